// What the read experiments (read_strategies.cu, read_loads.cu) share: a 1 GiB buffer of ones, the timing of one
// launch with the L2 flushed before it, and the warp sums their kernels end with.
#pragma once

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

__device__ __forceinline__ float vsum(float4 v) { return (v.x + v.y) + (v.z + v.w); }

__device__ __forceinline__ float warp_total(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The first `vectors` float4s of the buffer, and where the kernels leave their partial sums.
struct Bench {
  const float4* x;
  int64_t vectors;
  float* partials;
  unsigned* counter;  // zeroed before every launch, for the kernels that take work from it
  void* flush;        // 256 MiB, set before every launch: the L2 is then full of dirty lines
  int sms;
  double expected;    // the sum of the first `vectors` float4s
};

constexpr int64_t kMaxBytes = int64_t(1) << 30;

// The device's buffers: kMaxBytes of ones (every partial is an exact integer, so the total is exact whatever the
// order), the flush, the partials and the counter. Prints the device.
inline Bench allocate_bench() {
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("%s, %d SMs, L2 %d MiB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);
  Bench b{};
  float* x;
  CHECK(cudaMalloc(&x, kMaxBytes));
  CHECK(cudaMalloc(&b.flush, 256 << 20));
  CHECK(cudaMalloc(&b.partials, (kMaxBytes / 512) * sizeof(float)));
  CHECK(cudaMalloc(&b.counter, sizeof(unsigned)));
  std::vector<float> ones(1 << 20, 1.0f);
  for (int64_t off = 0; off < kMaxBytes; off += ones.size() * 4)
    CHECK(cudaMemcpy(reinterpret_cast<char*>(x) + off, ones.data(), ones.size() * 4, cudaMemcpyHostToDevice));
  b.x = reinterpret_cast<const float4*>(x);
  b.sms = prop.multiProcessorCount;
  return b;
}

// For the experiments that bring their own data (few_rows_gemm.cu, channels_last_float64.cu): prints the device and
// returns its multiprocessors, *flush set to 256 MiB of device memory to memset before each rep.
inline int device_and_flush(void** flush) {
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("%s, %d SMs\n", prop.name, prop.multiProcessorCount);
  CHECK(cudaMalloc(flush, 256 << 20));
  return prop.multiProcessorCount;
}

// `b` limited to its first `mib` MiB.
inline Bench first_mib(Bench b, int64_t mib) {
  b.vectors = mib * (1 << 20) / 16;
  b.expected = double(mib) * (1 << 20) / 4;
  return b;
}

// The median time of launch() in ms: CUDA events around it alone, median of 30 after 3 warm-ups, before_each()
// queued ahead of every rep (the flush of the L2, and whatever the launch needs reset).
template <typename BeforeEach, typename Launch>
double median_ms(BeforeEach before_each, Launch launch) {
  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));
  std::vector<float> ms;
  for (int rep = 0; rep < 33; ++rep) {
    before_each(rep);
    CHECK(cudaEventRecord(start));
    launch();
    CHECK(cudaEventRecord(stop));
    CHECK(cudaEventSynchronize(stop));
    float t = 0;
    CHECK(cudaEventElapsedTime(&t, start, stop));
    if (rep >= 3) ms.push_back(t);
  }
  CHECK(cudaGetLastError());
  CHECK(cudaEventDestroy(start));
  CHECK(cudaEventDestroy(stop));
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// Times launch() with the L2 flushed (a 256 MiB memset) and the counter and `partial_count` partials zeroed before
// each rep, checks the partials it leaves against b.expected, and prints a line.
template <typename Launch>
void run(const Bench& b, const char* name, int64_t partial_count, Launch launch) {
  const double median = median_ms(
      [&](int rep) {
        CHECK(cudaMemsetAsync(b.flush, rep, 256 << 20));
        CHECK(cudaMemsetAsync(b.counter, 0, sizeof(unsigned)));
        CHECK(cudaMemsetAsync(b.partials, 0, partial_count * sizeof(float)));
      },
      launch);
  std::vector<float> host(partial_count);
  CHECK(cudaMemcpy(host.data(), b.partials, partial_count * sizeof(float), cudaMemcpyDeviceToHost));
  double total = 0;
  for (float v : host) total += v;
  std::printf("  %-48s %8.4f ms %7.0f GB/s%s\n", name, median, double(b.vectors) * 16 / median / 1e6,
              total == b.expected ? "" : "  WRONG SUM");
}
