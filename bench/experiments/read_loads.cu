// Which load instruction reads a flat buffer fastest after the L2 was filled with dirty lines (a 256 MiB memset, as
// do_bench's flush leaves it, and as a producer's output usually does): ld.global.cs (evict first, the readers'
// load up to 4.5 L2s), ld.global.nc (the read-only path, theirs beyond: tuning.h, kEvictFirstMaxL2Share), and
// variants with explicit L2 prefetch sizes, an evict-first L2 cache policy, .lu and .cg, each under the schedule of
// fusedlse's split tiles (a block of 8 warps, each streaming its own eighth of a 32 or 128 KiB tile), 32 MiB to
// 1 GiB. Standalone, no torch:
//
//   nvcc -O3 -std=c++17 -arch=sm_90 bench/experiments/read_loads.cu -o /tmp/read_loads && /tmp/read_loads
//
// Timing: CUDA events around the kernel alone, the L2 flushed (a 256 MiB memset) before each rep; median of 30.
// Results: docs/limits.md §23.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CHECK(call)                                                                               \
  do {                                                                                            \
    cudaError_t e = (call);                                                                       \
    if (e != cudaSuccess) {                                                                       \
      std::printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e));                      \
      std::exit(1);                                                                               \
    }                                                                                             \
  } while (0)

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

enum class Load { kStreaming, kReadOnly, kPrefetch128, kStreaming128, kStreaming64, kEvictFirstPolicy128, kLastUse,
                  kGlobal128 };

template <Load kLoad>
__device__ __forceinline__ float4 load(const float4* p) {
  float4 v;
  if constexpr (kLoad == Load::kStreaming) {
    v = __ldcs(p);
  } else if constexpr (kLoad == Load::kReadOnly) {
    v = __ldg(p);
  } else if constexpr (kLoad == Load::kPrefetch128) {
    asm volatile("ld.global.nc.L2::128B.v4.f32 {%0,%1,%2,%3}, [%4];"
                 : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "l"(p));
  } else if constexpr (kLoad == Load::kStreaming128) {
    asm volatile("ld.global.cs.L2::128B.v4.f32 {%0,%1,%2,%3}, [%4];"
                 : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "l"(p));
  } else if constexpr (kLoad == Load::kStreaming64) {
    asm volatile("ld.global.cs.L2::64B.v4.f32 {%0,%1,%2,%3}, [%4];"
                 : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "l"(p));
  } else if constexpr (kLoad == Load::kEvictFirstPolicy128) {
    uint64_t policy;
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
    asm volatile("ld.global.nc.L2::cache_hint.L2::128B.v4.f32 {%0,%1,%2,%3}, [%4], %5;"
                 : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "l"(p), "l"(policy));
  } else if constexpr (kLoad == Load::kLastUse) {
    asm volatile("ld.global.lu.v4.f32 {%0,%1,%2,%3}, [%4];"
                 : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "l"(p));
  } else {
    asm volatile("ld.global.cg.L2::128B.v4.f32 {%0,%1,%2,%3}, [%4];"
                 : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "l"(p));
  }
  return v;
}

__device__ __forceinline__ float vsum(float4 v) { return (v.x + v.y) + (v.z + v.w); }

__device__ __forceinline__ float warp_total(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// `threads` threads (index t) read vectors [begin, end) t-strided, kLoads loads in flight each.
template <Load kLoad, int kLoads>
__device__ __forceinline__ float strided_sum(const float4* x, int64_t begin, int64_t end, int t, int threads) {
  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  int64_t i = begin + t;
  for (; i + int64_t(threads) * (kLoads - 1) < end; i += int64_t(threads) * kLoads) {
    float4 v[kLoads];
#pragma unroll
    for (int u = 0; u < kLoads; ++u) v[u] = load<kLoad>(x + i + int64_t(threads) * u);
#pragma unroll
    for (int u = 0; u < kLoads; ++u) acc[u % 4] += vsum(v[u]);
  }
  for (; i < end; i += threads) acc[0] += vsum(load<kLoad>(x + i));
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

// One block per tile of `tile` vectors, each warp streaming its own eighth (fusedlse's split tiles). One partial per
// warp.
template <Load kLoad, int kLoads>
__global__ void __launch_bounds__(kThreads) tiles(const float4* x, int64_t vectors, int64_t tile, float* partials) {
  const int64_t begin = int64_t(blockIdx.x) * tile, end = begin + tile < vectors ? begin + tile : vectors;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t piece = (end - begin + kWarps - 1) / kWarps;
  const int64_t p0 = min(begin + warp * piece, end), p1 = min(p0 + piece, end);
  const float s = warp_total(strided_sum<kLoad, kLoads>(x, p0, p1, lane, 32));
  if (lane == 0) partials[int64_t(blockIdx.x) * kWarps + warp] = s;
}

struct Bench {
  const float4* x;
  int64_t vectors;
  float* partials;
  void* flush;
  int sms;
  double expected;
};

template <typename Launch>
void run(const Bench& b, const char* name, int64_t partial_count, Launch launch) {
  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));
  std::vector<float> ms;
  for (int rep = 0; rep < 33; ++rep) {
    CHECK(cudaMemsetAsync(b.flush, rep, 256 << 20));
    CHECK(cudaMemsetAsync(b.partials, 0, partial_count * sizeof(float)));
    CHECK(cudaEventRecord(start));
    launch();
    CHECK(cudaEventRecord(stop));
    CHECK(cudaEventSynchronize(stop));
    float t = 0;
    CHECK(cudaEventElapsedTime(&t, start, stop));
    if (rep >= 3) ms.push_back(t);
  }
  CHECK(cudaGetLastError());
  std::vector<float> host(partial_count);
  CHECK(cudaMemcpy(host.data(), b.partials, partial_count * sizeof(float), cudaMemcpyDeviceToHost));
  double total = 0;
  for (float v : host) total += v;
  std::sort(ms.begin(), ms.end());
  const double median = ms[ms.size() / 2];
  std::printf("  %-48s %8.4f ms %7.0f GB/s%s\n", name, median, double(b.vectors) * 16 / median / 1e6,
              total == b.expected ? "" : "  WRONG SUM");
  CHECK(cudaEventDestroy(start));
  CHECK(cudaEventDestroy(stop));
}

template <Load kLoad, int kLoads>
void schedules(const Bench& b, const char* load_name) {
  char name[128];
  for (int64_t tile_kib : {32, 128}) {
    const int64_t tile = tile_kib * 1024 / 16, blocks = (b.vectors + tile - 1) / tile;
    std::snprintf(name, sizeof name, "%-6s L=%-2d warp-split tiles %4lld KiB", load_name, kLoads, (long long)tile_kib);
    run(b, name, blocks * kWarps, [&] {
      tiles<kLoad, kLoads><<<unsigned(blocks), kThreads>>>(b.x, b.vectors, tile, b.partials);
    });
  }
}

int main() {
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("%s, %d SMs, L2 %d MiB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);
  const int64_t max_bytes = int64_t(1) << 30;
  float* x;
  void* flush;
  float* partials;
  CHECK(cudaMalloc(&x, max_bytes));
  CHECK(cudaMalloc(&flush, 256 << 20));
  CHECK(cudaMalloc(&partials, (max_bytes / 512) * sizeof(float)));
  // Ones: every partial is an exact integer, so the total is exact whatever the order.
  std::vector<float> ones(1 << 20, 1.0f);
  for (int64_t off = 0; off < max_bytes; off += ones.size() * 4)
    CHECK(cudaMemcpy(reinterpret_cast<char*>(x) + off, ones.data(), ones.size() * 4, cudaMemcpyHostToDevice));
  for (int64_t mib : {1024, 512, 256, 128, 64, 32}) {
    const Bench b{reinterpret_cast<const float4*>(x), mib * (1 << 20) / 16, partials, flush,
                  prop.multiProcessorCount, double(mib) * (1 << 20) / 4};
    std::printf("%lld MiB\n", (long long)mib);
    schedules<Load::kStreaming, 8>(b, "cs");
    schedules<Load::kReadOnly, 8>(b, "nc");
    schedules<Load::kPrefetch128, 8>(b, "nc128");
    schedules<Load::kStreaming128, 8>(b, "cs128");
    schedules<Load::kStreaming64, 8>(b, "cs64");
    schedules<Load::kEvictFirstPolicy128, 8>(b, "ef128");
    schedules<Load::kLastUse, 8>(b, "lu");
    schedules<Load::kGlobal128, 8>(b, "cg128");
  }
  return 0;
}
