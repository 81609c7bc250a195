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
#include "read_bench.cuh"

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

int main() {
  const Bench all = allocate_bench();
  for (int64_t mib : {1024, 256, 64}) {
    const Bench b = first_mib(all, mib);
    std::printf("%lld MiB\n", (long long)mib);
    strategies<8>(b);
    strategies<16>(b);
  }
  return 0;
}
