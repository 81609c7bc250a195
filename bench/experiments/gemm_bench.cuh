// What the epilogue GEMM experiments (few_rows_gemm.cu, few_rows_mma.cu) share: random operands on the device, the
// splits' partials added in order, and a result's error against its float64 truth.
#pragma once

#include <cmath>
#include <cstdlib>
#include <vector>

#include "read_bench.cuh"  // CHECK

// `count` values in thousandths of [-1, 1] from rand() (the caller seeds it).
template <typename A> std::vector<A> random_values(int64_t count) {
  std::vector<A> values(count);
  for (auto& v : values) v = A(rand() % 2001 - 1000) / 1000;
  return values;
}

// A device copy of `values`; device_buffer: `count` uninitialised values.
template <typename A> A* device_buffer(int64_t count) {
  A* buffer = nullptr;
  CHECK(cudaMalloc(&buffer, count * sizeof(A)));
  return buffer;
}
template <typename A> A* device_copy(const std::vector<A>& values) {
  A* copy = device_buffer<A>(static_cast<int64_t>(values.size()));
  CHECK(cudaMemcpy(copy, values.data(), values.size() * sizeof(A), cudaMemcpyHostToDevice));
  return copy;
}

// logits [count] = partial [splits][count] added in split order (bias_lse's order in fusedlse).
template <typename A>
__global__ void add_splits(const A* __restrict__ partial, A* __restrict__ logits, int64_t count, int splits) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    A total = 0;
    for (int s = 0; s < splits; ++s) total += partial[s * count + i];
    logits[i] = total;
  }
}

// max |got - truth| / max |truth| of the device's values `got` (truth.size() of them).
template <typename A> double relative_error(const A* got, const std::vector<double>& truth) {
  std::vector<A> host(truth.size());
  CHECK(cudaMemcpy(host.data(), got, host.size() * sizeof(A), cudaMemcpyDeviceToHost));
  double err = 0, scale = 0;
  for (size_t i = 0; i < host.size(); ++i) {
    err = std::max(err, std::fabs(double(host[i]) - truth[i]));
    scale = std::max(scale, std::fabs(truth[i]));
  }
  return err / scale;
}

// truth [b, n] = sums @ weight in float64: sums row r, channel c at r x row_stride + c x channel_stride; weight [k, n].
template <typename A>
std::vector<double> gemm_truth(const std::vector<A>& sums, int64_t row_stride, int64_t channel_stride,
                               const std::vector<A>& weight, int b, int k, int n) {
  std::vector<double> truth(int64_t(b) * n, 0.0);
  for (int r = 0; r < b; ++r) {
    for (int c = 0; c < k; ++c) {
      const double s = sums[r * row_stride + c * channel_stride];
      for (int j = 0; j < n; ++j) truth[int64_t(r) * n + j] += s * weight[int64_t(c) * n + j];
    }
  }
  return truth;
}

// cudaFree of each device buffer.
template <typename... Buffers> void free_device(Buffers*... buffers) {
  for (void* buffer : {static_cast<void*>(buffers)...}) CHECK(cudaFree(buffer));
}
