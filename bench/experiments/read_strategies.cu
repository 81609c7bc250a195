// How to schedule a pure streaming read so that it reaches the DRAM's speed: work-distribution strategies side by
// side on one flat float32 buffer, each writing one partial sum per unit of work (checked against the known total).
// Standalone, no torch:
//
//   nvcc -O3 -std=c++17 -arch=sm_90 bench/experiments/read_strategies.cu -o /tmp/read_strategies && /tmp/read_strategies
//
// Strategies (T = 256 threads per block, L = 16-byte loads each thread keeps in flight):
//   static      persistent warps, warp w owns the w-th contiguous 1/W of the buffer (fusedlse's first reader,
//               replaced after this experiment)
//   dynamic     persistent warps take fixed chunks in order from an atomic counter (the fast warps take more)
//   interleave  persistent blocks, block b takes tiles b, b + G, b + 2G... (all blocks read neighbouring tiles)
//   oneshot     one block per tile, as many blocks as tiles: the hardware block scheduler balances (the schedule
//               fusedlse's forward uses now, with 128 KiB tiles; docs/design.md)
// Results on the H100 and what came of them: docs/limits.md.
// Timing: CUDA events around the kernel alone, the L2 flushed (a 256 MiB memset) before each rep; median of 30.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdint>
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

__device__ __forceinline__ float vsum(float4 v) { return (v.x + v.y) + (v.z + v.w); }

__device__ __forceinline__ float warp_total(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// One warp: vectors [begin, end) of x, lane-strided, kLoads loads in flight per lane.
template <int kLoads>
__device__ __forceinline__ float warp_range(const float4* x, int64_t begin, int64_t end, int lane) {
  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  int64_t i = begin + lane;
  for (; i + 32 * (kLoads - 1) < end; i += 32 * kLoads) {
    float4 v[kLoads];
#pragma unroll
    for (int u = 0; u < kLoads; ++u) v[u] = __ldcs(x + i + 32 * u);
#pragma unroll
    for (int u = 0; u < kLoads; ++u) acc[u % 4] += vsum(v[u]);
  }
  for (; i < end; i += 32) acc[0] += vsum(__ldcs(x + i));
  return warp_total((acc[0] + acc[1]) + (acc[2] + acc[3]));
}

template <int kLoads>
__global__ void __launch_bounds__(kThreads) static_warps(const float4* x, int64_t vectors, float* partials) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = int64_t(gridDim.x) * (kThreads / 32);
  const int64_t w = int64_t(blockIdx.x) * (kThreads / 32) + threadIdx.x / 32;
  const float s = warp_range<kLoads>(x, vectors * w / warps, vectors * (w + 1) / warps, lane);
  if (lane == 0) partials[w] = s;
}

template <int kLoads>
__global__ void __launch_bounds__(kThreads) dynamic_warps(const float4* x, int64_t vectors, int64_t chunk,
                                                          unsigned* counter, float* partials) {
  const int lane = threadIdx.x % 32;
  const int64_t chunks = (vectors + chunk - 1) / chunk;
  for (;;) {
    unsigned c = 0;
    if (lane == 0) c = atomicAdd(counter, 1u);
    c = __shfl_sync(0xffffffffu, c, 0);
    if (c >= chunks) return;
    const int64_t first = int64_t(c) * chunk;
    const float s = warp_range<kLoads>(x, first, first + chunk < vectors ? first + chunk : vectors, lane);
    if (lane == 0) partials[c] = s;
  }
}

// A block's tile: kThreads * kLoads vectors, thread t reading t, t + T, t + 2T...; one partial per warp.
template <int kLoads>
__device__ __forceinline__ void block_tile(const float4* x, int64_t vectors, int64_t tile, float* partials) {
  const int64_t base = tile * kThreads * kLoads + threadIdx.x;
  float4 v[kLoads];
#pragma unroll
  for (int u = 0; u < kLoads; ++u) {
    const int64_t i = base + int64_t(u) * kThreads;
    v[u] = i < vectors ? __ldcs(x + i) : make_float4(0.f, 0.f, 0.f, 0.f);
  }
  float acc[2] = {0.f, 0.f};
#pragma unroll
  for (int u = 0; u < kLoads; ++u) acc[u % 2] += vsum(v[u]);
  const float s = warp_total(acc[0] + acc[1]);
  if (threadIdx.x % 32 == 0) partials[tile * (kThreads / 32) + threadIdx.x / 32] = s;
}

template <int kLoads>
__global__ void __launch_bounds__(kThreads) interleave_blocks(const float4* x, int64_t vectors, float* partials) {
  const int64_t tiles = (vectors + int64_t(kThreads) * kLoads - 1) / (int64_t(kThreads) * kLoads);
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) block_tile<kLoads>(x, vectors, t, partials);
}

template <int kLoads, int kTilesPerBlock>
__global__ void __launch_bounds__(kThreads) oneshot_blocks(const float4* x, int64_t vectors, float* partials) {
  const int64_t tiles = (vectors + int64_t(kThreads) * kLoads - 1) / (int64_t(kThreads) * kLoads);
#pragma unroll 1
  for (int k = 0; k < kTilesPerBlock; ++k) {
    const int64_t t = int64_t(blockIdx.x) * kTilesPerBlock + k;
    if (t < tiles) block_tile<kLoads>(x, vectors, t, partials);
  }
}

struct Bench {
  const float4* x;
  int64_t vectors;
  float* partials;
  unsigned* counter;
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
    CHECK(cudaMemsetAsync(b.counter, 0, sizeof(unsigned)));
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
  const double bytes = double(b.vectors) * 16;
  std::printf("  %-34s %8.4f ms %7.0f GB/s%s\n", name, median, bytes / median / 1e6,
              total == b.expected ? "" : "  WRONG SUM");
  CHECK(cudaEventDestroy(start));
  CHECK(cudaEventDestroy(stop));
}

template <int kLoads>
void strategies(const Bench& b) {
  char name[96];
  for (int per_sm : {2, 4, 8}) {
    const int blocks = b.sms * per_sm;
    std::snprintf(name, sizeof name, "static     L=%-2d %d blocks/SM", kLoads, per_sm);
    run(b, name, int64_t(blocks) * 8, [&] { static_warps<kLoads><<<blocks, kThreads>>>(b.x, b.vectors, b.partials); });
    for (int64_t chunk_kib : {16, 64}) {
      const int64_t chunk = chunk_kib * 1024 / 16;
      std::snprintf(name, sizeof name, "dynamic    L=%-2d %d blocks/SM %lld KiB", kLoads, per_sm, (long long)chunk_kib);
      run(b, name, (b.vectors + chunk - 1) / chunk,
          [&] { dynamic_warps<kLoads><<<blocks, kThreads>>>(b.x, b.vectors, chunk, b.counter, b.partials); });
    }
    const int64_t tiles = (b.vectors + int64_t(kThreads) * kLoads - 1) / (int64_t(kThreads) * kLoads);
    std::snprintf(name, sizeof name, "interleave L=%-2d %d blocks/SM", kLoads, per_sm);
    run(b, name, tiles * 8, [&] { interleave_blocks<kLoads><<<blocks, kThreads>>>(b.x, b.vectors, b.partials); });
  }
  const int64_t tiles = (b.vectors + int64_t(kThreads) * kLoads - 1) / (int64_t(kThreads) * kLoads);
  std::snprintf(name, sizeof name, "oneshot    L=%-2d 1 tile/block", kLoads);
  run(b, name, tiles * 8, [&] {
    oneshot_blocks<kLoads, 1><<<unsigned(tiles), kThreads>>>(b.x, b.vectors, b.partials);
  });
  std::snprintf(name, sizeof name, "oneshot    L=%-2d 4 tiles/block", kLoads);
  run(b, name, tiles * 8, [&] {
    oneshot_blocks<kLoads, 4><<<unsigned((tiles + 3) / 4), kThreads>>>(b.x, b.vectors, b.partials);
  });
}

int main(int argc, char** argv) {
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("%s, %d SMs, L2 %d MiB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);
  const int64_t max_bytes = int64_t(1) << 30;
  float* x;
  void* flush;
  float* partials;
  unsigned* counter;
  CHECK(cudaMalloc(&x, max_bytes));
  CHECK(cudaMalloc(&flush, 256 << 20));
  CHECK(cudaMalloc(&partials, (max_bytes / 512) * sizeof(float)));
  CHECK(cudaMalloc(&counter, sizeof(unsigned)));
  // Ones: every partial is an exact integer, so the total is exact whatever the order.
  std::vector<float> ones(1 << 20, 1.0f);
  for (int64_t off = 0; off < max_bytes; off += ones.size() * 4)
    CHECK(cudaMemcpy(reinterpret_cast<char*>(x) + off, ones.data(), ones.size() * 4, cudaMemcpyHostToDevice));
  for (int64_t mib : {1024, 256, 64}) {
    Bench b{reinterpret_cast<const float4*>(x), mib * (1 << 20) / 16, partials, counter, flush,
            prop.multiProcessorCount, double(mib) * (1 << 20) / 4};
    std::printf("%lld MiB\n", (long long)mib);
    strategies<8>(b);
    strategies<16>(b);
  }
  return 0;
}
