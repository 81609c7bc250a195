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
#include "read_bench.cuh"

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
  const Bench all = allocate_bench();
  for (int64_t mib : {1024, 512, 256, 128, 64, 32}) {
    const Bench b = first_mib(all, mib);
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
