// The split strategy's last step (BiasLseArgs; the kernels are in ../split.cu): each row's logits scaled, the
// biases added (staged once a block where they fit) and the row's logsumexp, by a lane's share, a group of lanes or a
// block.
#pragma once

#include "load.cuh"
#include "reduce.cuh"

namespace fusedlse {
namespace {

// The biases of a row's columns: scale x logit n + (bias + conv_bias). kStaged: their sum in shared memory, staged
// once per block where it fits (kBiasLseMaxStagedBytes). Read from global memory per logit, their 64-bit addresses
// and conversions were most of the kernel's instructions (about 140 a logit at C_out 113, r14: 32.5M warp
// instructions for 7.4M logits).
template <typename T, bool kStaged> struct ColumnBiases {
  using A = acc_t<T>;
  const BiasLseArgs& a;
  const A* staged;  // kStaged: [C_out], bias + conv_bias
  __device__ __forceinline__ A biased(A scale, A logit, int n) const {
    if constexpr (kStaged) {
      return scale * logit + staged[n];
    } else {
      return scale * logit + column_bias(static_cast<const T*>(a.bias), a.bias_stride,
                                         static_cast<const T*>(a.conv_bias), n);
    }
  }
};

// Loads each thread has in flight: logits of a row, or biases being staged.
constexpr int kLoadsAtOnce = 4;

// Stages the biases' sum (kStaged), every thread of the block taking part: a trip's loads before its conversions
// and stores, so that a thread waits on memory once per trip rather than once per column.
template <typename T, bool kStaged>
__device__ __forceinline__ void stage_biases(const BiasLseArgs& a, acc_t<T>* staged) {
  if constexpr (kStaged) {
    const T* bias = static_cast<const T*>(a.bias);
    const T* conv_bias = static_cast<const T*>(a.conv_bias);
    const int c_out = static_cast<int>(a.c_out);
    for (int first = threadIdx.x; first < c_out; first += kLoadsAtOnce * kSplitThreads) {
      T raw_bias[kLoadsAtOnce], raw_conv_bias[kLoadsAtOnce];
#pragma unroll
      for (int j = 0; j < kLoadsAtOnce; ++j) {
        const int n = first + j * kSplitThreads, read = n < c_out ? n : 0;  // column 0 stands in past C_out
        raw_bias[j] = bias[read * a.bias_stride];
        if (conv_bias) raw_conv_bias[j] = conv_bias[read];
      }
#pragma unroll
      for (int j = 0; j < kLoadsAtOnce; ++j) {
        const int n = first + j * kSplitThreads;
        if (n < c_out) staged[n] = bias_sum(raw_bias[j], conv_bias != nullptr ? &raw_conv_bias[j] : nullptr);
      }
    }
    __syncthreads();
  }
}

// Split-K's partial logits (BiasLseArgs::splits) a lane loads at once per column: kSplitLoadsAtOnce x kLoadsAtOnce.
constexpr int kSplitLoadsAtOnce = 4;

// One lane's share of a row: logits n = first, first + step, ... below C_out, kLoadsAtOnce loads in flight, each
// trip's values pushed together (one rescale of the state; -inf past C_out adds nothing). kSplit: each logit the sum
// of a.splits partials, added in split order (so the same every run).
template <typename T, bool kStaged, bool kSplit = false>
__device__ __forceinline__ Lse<acc_t<T>> lane_lse(const ColumnBiases<T, kStaged>& biases, int64_t row, int first,
                                                  int step) {
  using A = acc_t<T>;
  const int c_out = static_cast<int>(biases.a.c_out);
  const A* row_logits = static_cast<const A*>(biases.a.logits) + row * c_out;
  const A scale = static_cast<A>(biases.a.scale);
  Lse<A> state{-INFINITY, A(0)};
  for (int n = first; n < c_out; n += kLoadsAtOnce * step) {
    A v[kLoadsAtOnce];
    if constexpr (kSplit) {
      load_split_sums<kSplitLoadsAtOnce>(row_logits, biases.a.splits, biases.a.batch * c_out, n, step, c_out, v);
    } else {
      load_strided(row_logits, n, step, c_out, v);
    }
#pragma unroll
    for (int i = 0; i < kLoadsAtOnce; ++i) {
      const int col = n + i * step;
      v[i] = col < c_out ? biases.biased(scale, v[i], col) : A(-INFINITY);
    }
    lse_push_all(state, v);
  }
  return state;
}

template <typename T>
__device__ __forceinline__ void write_lse(const BiasLseArgs& a, int64_t row, Lse<acc_t<T>> state) {
  static_cast<T*>(a.out)[row] = from_acc<T>(ten_lse(state));
}

// The block's logsumexp of every thread's state, in warp 0's lane 0: each warp's lanes by butterfly, then the
// warps' in order (a fixed order). Every thread of the block calls it.
template <typename A, int kThreads = kSplitThreads> __device__ __forceinline__ Lse<A> block_lse(Lse<A> state) {
  constexpr int kWarps = kThreads / 32;
  static_assert(kWarps <= 32, "warp 0 merges the warps' states");
  __shared__ A warp_max[kWarps], warp_sum[kWarps];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  state = group_lse<A, 32>(state);
  if (lane == 0) {
    warp_max[warp] = state.max_value;
    warp_sum[warp] = state.scaled_sum;
  }
  __syncthreads();
  if (warp == 0) {
    state = lane < kWarps ? Lse<A>{warp_max[lane], warp_sum[lane]} : Lse<A>{-INFINITY, A(0)};
    state = group_lse<A, 32>(state);  // lanes past kWarps hold empty states, which merge as nothing
  }
  __syncthreads();  // the shared slots are the next call's
  return state;
}

}  // namespace
}  // namespace fusedlse
