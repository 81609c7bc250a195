// The split strategy's kernels (../plan.h): a reader for tiny planes of any layout, and the biases + logsumexp
// after the GEMM. Only CUDA headers are included: see kernels.h.

#include "kernels.h"
#include "kernels/dtype.cuh"
#include "kernels/reduce.cuh"

#include <algorithm>

namespace fusedlse {
namespace {

// One thread per plane: planes of a few dozen elements would leave most lanes of a warp per plane idle. Neighbouring
// threads take neighbouring planes, whose bytes share cache lines in every layout (adjacent planes when planes are
// contiguous, adjacent channels when channels are), so each line is fetched from DRAM once. Each plane is summed in
// a fixed order: the result is bitwise reproducible.
template <typename T>
__global__ void __launch_bounds__(kSplitThreads) tiny_planes_kernel(TinyPlanesArgs a) {
  using A = acc_t<T>;
  const T* x = static_cast<const T*>(a.x);
  A* sums = static_cast<A*>(a.sums);
  const int64_t planes = a.batch * a.channels;
  for (int64_t i = int64_t{blockIdx.x} * kSplitThreads + threadIdx.x; i < planes;
       i += int64_t{gridDim.x} * kSplitThreads) {
    const int64_t b = i / a.channels, c = i - b * a.channels;
    const T* plane = x + b * a.stride_b + c * a.stride_c;
    A total = A(0);
    for (int64_t h = 0; h < a.height; ++h) {
      const T* row = plane + h * a.stride_h;
#pragma unroll 4
      for (int64_t w = 0; w < a.width; ++w) total += to_acc(__ldg(row + w * a.stride_w));
    }
    sums[i] = total;
  }
}

// The logit of (row, n), biases added.
template <typename T>
__device__ __forceinline__ acc_t<T> biased_logit(const BiasLseArgs& a, const acc_t<T>* row_logits, int64_t n) {
  using A = acc_t<T>;
  A v = static_cast<A>(a.scale) * row_logits[n] + to_acc(static_cast<const T*>(a.bias)[n * a.bias_stride]);
  if (a.conv_bias) v += to_acc(static_cast<const T*>(a.conv_bias)[n]);
  return v;
}

// One lane's share of a row: elements n = first, first + step, ..., kLoadsAtOnce loads in flight.
constexpr int kLoadsAtOnce = 4;
template <typename T>
__device__ __forceinline__ Lse<acc_t<T>> lane_lse(const BiasLseArgs& a, int64_t row, int64_t first, int64_t step) {
  using A = acc_t<T>;
  const A* row_logits = static_cast<const A*>(a.logits) + row * a.c_out;
  Lse<A> state{-INFINITY, A(0)};
  int64_t n = first;
  for (; n + (kLoadsAtOnce - 1) * step < a.c_out; n += kLoadsAtOnce * step) {
    A v[kLoadsAtOnce];
#pragma unroll
    for (int i = 0; i < kLoadsAtOnce; ++i) v[i] = biased_logit<T>(a, row_logits, n + i * step);
#pragma unroll
    for (int i = 0; i < kLoadsAtOnce; ++i) lse_push(state, v[i]);
  }
  for (; n < a.c_out; n += step) lse_push(state, biased_logit<T>(a, row_logits, n));
  return state;
}

template <typename T>
__device__ __forceinline__ void write_lse(const BiasLseArgs& a, int64_t row, Lse<acc_t<T>> state) {
  static_cast<T*>(a.out)[row] = from_acc<T>(ten_lse(state));
}

// `kLanes` lanes per row (a power of two, at most 32): as many as C_out keeps busy, so a warp takes 32 / kLanes rows.
template <typename T, int kLanes>
__global__ void __launch_bounds__(kSplitThreads) bias_lse_kernel(BiasLseArgs a) {
  using A = acc_t<T>;
  constexpr int kRowsPerBlock = kSplitThreads / kLanes;
  const int lane = threadIdx.x % kLanes;
  // Every lane of a group runs the same number of trips, so the shuffles see the whole warp.
  for (int64_t row0 = int64_t{blockIdx.x} * kRowsPerBlock; row0 < a.batch; row0 += int64_t{gridDim.x} * kRowsPerBlock) {
    const int64_t row = row0 + threadIdx.x / kLanes;
    Lse<A> state{-INFINITY, A(0)};
    if (row < a.batch) state = lane_lse<T>(a, row, lane, kLanes);
    state = group_lse<A, kLanes>(state);
    if (lane == 0 && row < a.batch) write_lse<T>(a, row, state);
  }
}

// A block per row: few rows of many logits (B of a few hundred, C_out in the thousands) would otherwise leave most
// of the device idle while each warp walks its row alone.
template <typename T>
__global__ void __launch_bounds__(kSplitThreads) bias_lse_block_kernel(BiasLseArgs a) {
  using A = acc_t<T>;
  constexpr int kWarps = kSplitThreads / 32;
  __shared__ A warp_max[kWarps], warp_sum[kWarps];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int64_t row = blockIdx.x; row < a.batch; row += gridDim.x) {
    Lse<A> state = group_lse<A, 32>(lane_lse<T>(a, row, threadIdx.x, kSplitThreads));
    if (lane == 0) {
      warp_max[warp] = state.max_value;
      warp_sum[warp] = state.scaled_sum;
    }
    __syncthreads();
    if (warp == 0) {
      state = lane < kWarps ? Lse<A>{warp_max[lane], warp_sum[lane]} : Lse<A>{-INFINITY, A(0)};
      state = group_lse<A, 32>(state);  // lanes past kWarps hold empty states, which merge as nothing
      if (lane == 0) write_lse<T>(a, row, state);
    }
    __syncthreads();  // the next row reuses the shared slots
  }
}

template <typename T, int kLanes>
cudaError_t launch_bias_lse_lanes(const BiasLseArgs& a, int64_t max_blocks, cudaStream_t stream) {
  constexpr int64_t kRowsPerBlock = kSplitThreads / kLanes;
  const int64_t blocks = std::min<int64_t>(max_blocks, (a.batch + kRowsPerBlock - 1) / kRowsPerBlock);
  bias_lse_kernel<T, kLanes><<<static_cast<unsigned>(blocks), kSplitThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_tiny_planes(const TinyPlanesArgs& a, int64_t max_blocks, cudaStream_t stream) {
  const int64_t planes = a.batch * a.channels;
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(max_blocks, (planes + kSplitThreads - 1) / kSplitThreads));
  return with_element_type(a.kind, cudaErrorInvalidValue, [&](auto element) {
    using T = decltype(element);
    tiny_planes_kernel<T><<<static_cast<unsigned>(blocks), kSplitThreads, 0, stream>>>(a);
    return cudaGetLastError();
  });
}

cudaError_t launch_bias_lse(const BiasLseArgs& a, int64_t max_blocks, cudaStream_t stream) {
  return with_element_type(a.kind, cudaErrorInvalidValue, [&](auto element) {
    using T = decltype(element);
    // Rows of enough logits to keep a block busy, and too few of them for a warp per row to fill a quarter of the
    // device: a block per row (C_out 2892 on 70 rows, r18: one warp per row walked each row alone).
    if (a.c_out >= 2 * kSplitThreads && a.batch * 32 * 4 < max_blocks * kSplitThreads) {
      bias_lse_block_kernel<T><<<static_cast<unsigned>(std::min<int64_t>(max_blocks, a.batch)), kSplitThreads, 0,
                                 stream>>>(a);
      return cudaGetLastError();
    }
    if (a.c_out <= 1) return launch_bias_lse_lanes<T, 1>(a, max_blocks, stream);
    if (a.c_out <= 2) return launch_bias_lse_lanes<T, 2>(a, max_blocks, stream);
    if (a.c_out <= 4) return launch_bias_lse_lanes<T, 4>(a, max_blocks, stream);
    if (a.c_out <= 8) return launch_bias_lse_lanes<T, 8>(a, max_blocks, stream);
    if (a.c_out <= 16) return launch_bias_lse_lanes<T, 16>(a, max_blocks, stream);
    return launch_bias_lse_lanes<T, 32>(a, max_blocks, stream);
  });
}

}  // namespace fusedlse
