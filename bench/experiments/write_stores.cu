// Which store and which grid write a 1 GiB (or 512 MiB) buffer fastest, after the L2 was filled with dirty lines (a
// 256 MiB memset before each rep): broadcast_hw's schedule (a grid that fills the device, each thread 4 vectors a
// trip, grid-stride) with st.global.cs (its store) or a plain st.global, and a one-shot grid (a thread per 4
// vectors, no loop) with each, against cudaMemsetAsync. Standalone, no torch:
//
//   nvcc -O3 -std=c++17 -arch=sm_90 bench/experiments/write_stores.cu -o /tmp/write_stores && /tmp/write_stores
//
// Timing: CUDA events around the kernel alone; median of 30 after 3 warm-ups. Results: docs/limits.md §30.
#include "read_bench.cuh"  // CHECK, kThreads, median_ms

constexpr int kVectors = 4;  // per thread per trip

template <bool kStreaming>
__device__ __forceinline__ void store(uint4* p, uint4 v) {
  if constexpr (kStreaming) {
    __stcs(p, v);
  } else {
    *p = v;
  }
}

// out [vectors] 16-byte vectors, each `value` in every word; grid-stride over trips of kVectors per thread.
template <bool kStreaming>
__global__ void __launch_bounds__(kThreads) fill_kernel(uint4* out, uint32_t vectors, unsigned value) {
  const uint4 v = make_uint4(value, value, value, value);
  const uint32_t step = gridDim.x * kThreads * kVectors;
  for (uint32_t first = blockIdx.x * kThreads * kVectors + threadIdx.x; first < vectors; first += step) {
#pragma unroll
    for (int u = 0; u < kVectors; ++u) {
      const uint32_t i = first + u * kThreads;
      if (i < vectors) store<kStreaming>(out + i, v);
    }
  }
}

int main() {
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  int per_sm = 0;
  CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, fill_kernel<true>, kThreads, 0));
  std::printf("%s, %d SMs, %d blocks of %d per SM\n", prop.name, prop.multiProcessorCount, per_sm, kThreads);
  void* flush;
  uint4* out;
  CHECK(cudaMalloc(&flush, 256 << 20));
  CHECK(cudaMalloc(&out, size_t(1) << 30));
  const auto time = [&](const char* name, int64_t bytes, auto launch) {
    const double ms = median_ms([&](int rep) { CHECK(cudaMemsetAsync(flush, rep, 256 << 20)); }, launch);
    std::printf("  %-44s %8.1f us %7.0f GB/s\n", name, ms * 1e3, bytes / (ms * 1e6));
  };
  for (int64_t mib : {1024, 512, 64}) {
    const int64_t bytes = mib << 20;
    const uint32_t vectors = static_cast<uint32_t>(bytes / 16);
    std::printf("%lld MiB\n", static_cast<long long>(mib));
    const unsigned resident = prop.multiProcessorCount * per_sm;
    const unsigned one_shot = (vectors + kThreads * kVectors - 1) / (kThreads * kVectors);
    time("cudaMemsetAsync", bytes, [&] { CHECK(cudaMemsetAsync(out, 1, bytes)); });
    for (unsigned mult : {1u, 2u, 4u}) {
      char name[64];
      std::snprintf(name, sizeof(name), "grid-stride %ux resident, st.global.cs", mult);
      time(name, bytes, [&] { fill_kernel<true><<<resident * mult, kThreads>>>(out, vectors, 1); });
      std::snprintf(name, sizeof(name), "grid-stride %ux resident, st.global", mult);
      time(name, bytes, [&] { fill_kernel<false><<<resident * mult, kThreads>>>(out, vectors, 1); });
    }
    time("one-shot grid, st.global.cs", bytes, [&] { fill_kernel<true><<<one_shot, kThreads>>>(out, vectors, 1); });
    time("one-shot grid, st.global", bytes, [&] { fill_kernel<false><<<one_shot, kThreads>>>(out, vectors, 1); });
  }
  return 0;
}
