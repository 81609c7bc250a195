// The split strategy's last step (BiasLseArgs): each row's logits scaled, the biases added (staged once a block where
// they fit) and the row's logsumexp, by a lane's share, a group of lanes or a block; the bodies of ../split.cu's
// bias_lse, bias_lse_block, bias_lse_row and shares_lse kernels.
#pragma once

#include "../launch.cuh"
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

// Stages the biases' sum (kStaged), every thread of the block (kThreads) taking part: a trip's loads before its
// conversions and stores, so that a thread waits on memory once per trip rather than once per column.
template <typename T, bool kStaged, int kThreads = kSplitThreads>
__device__ __forceinline__ void stage_biases(const BiasLseArgs& a, acc_t<T>* staged) {
  if constexpr (kStaged) {
    const T* bias = static_cast<const T*>(a.bias);
    const T* conv_bias = static_cast<const T*>(a.conv_bias);
    const int c_out = static_cast<int>(a.c_out);
    for (int first = threadIdx.x; first < c_out; first += kLoadsAtOnce * kThreads) {
      T raw_bias[kLoadsAtOnce], raw_conv_bias[kLoadsAtOnce];
#pragma unroll
      for (int j = 0; j < kLoadsAtOnce; ++j) {
        const int n = first + j * kThreads, read = n < c_out ? n : 0;  // column 0 stands in past C_out
        raw_bias[j] = bias[read * a.bias_stride];
        if (conv_bias) raw_conv_bias[j] = conv_bias[read];
      }
#pragma unroll
      for (int j = 0; j < kLoadsAtOnce; ++j) {
        const int n = first + j * kThreads;
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
  // Split-K's partials are contiguous (row_stride C_out); other logits may be a view of rows row_stride apart.
  const A* row_logits = static_cast<const A*>(biases.a.logits) + row * biases.a.row_stride;
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

// A block's biases once the grid ahead has ended: their sum staged in its shared memory (kStaged), every thread
// taking part.
template <typename T, bool kStaged>
__device__ __forceinline__ ColumnBiases<T, kStaged> block_biases(const BiasLseArgs& a) {
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  acc_t<T>* staged = reinterpret_cast<acc_t<T>*>(shared_bytes);
  wait_for_previous_grid();
  stage_biases<T, kStaged>(a, staged);
  return ColumnBiases<T, kStaged>{a, staged};
}

// `kLanes` lanes per row (a power of two, at most 32): as many as give each about kBiasLseValuesPerLane logits of the
// row, so a warp takes 32 / kLanes rows.
template <typename T, int kLanes, bool kStaged, bool kSplit>
__device__ __forceinline__ void bias_lse_rows(BiasLseArgs a) {
  using A = acc_t<T>;
  const ColumnBiases<T, kStaged> biases = block_biases<T, kStaged>(a);
  constexpr int kRowsPerBlock = kSplitThreads / kLanes;
  const int lane = threadIdx.x % kLanes;
  // Every lane of a group runs the same number of trips, so the shuffles see the whole warp.
  for (int64_t row0 = int64_t{blockIdx.x} * kRowsPerBlock; row0 < a.batch; row0 += int64_t{gridDim.x} * kRowsPerBlock) {
    const int64_t row = row0 + threadIdx.x / kLanes;
    Lse<A> state{-INFINITY, A(0)};
    if (row < a.batch) state = lane_lse<T, kStaged, kSplit>(biases, row, lane, kLanes);
    state = group_lse<A, kLanes>(state);
    if (lane == 0 && row < a.batch) write_lse<T>(a, row, state);
  }
}

// A block per row: few rows of many logits (B of a few hundred, C_out in the thousands) would otherwise leave most
// of the device idle while each warp walks its row alone.
template <typename T, bool kStaged, bool kSplit>
__device__ __forceinline__ void bias_lse_block_rows(BiasLseArgs a) {
  using A = acc_t<T>;
  const ColumnBiases<T, kStaged> biases = block_biases<T, kStaged>(a);
  for (int64_t row = blockIdx.x; row < a.batch; row += gridDim.x) {
    const Lse<A> state =
        block_lse(lane_lse<T, kStaged, kSplit>(biases, row, static_cast<int>(threadIdx.x), kSplitThreads));
    if (threadIdx.x == 0) write_lse<T>(a, row, state);
  }
}

// Split partials each thread of bias_lse's row kernel loads at once per column: at 1024 threads a thread has 64
// registers, and float64's [kRowSplitLoadsAtOnce][kBiasLseRowLoads] partials take 16 of them.
constexpr int kRowSplitLoadsAtOnce = 2;

// A block of kBiasLseRowThreads threads per row, for rows that one trip of kBiasLseRowLoads loads a thread covers
// (C_out up to their product, tuning.h): a thread's columns are the same in every row, so their biases' sums are
// loaded once, into registers, before the wait for the GEMM (the caller's tensors, ready before it); each row's
// logits are then all in flight at once, and one rescale and an exp per value follow, spread over four times the
// warps of bias_lse_block_kernel, which walks a row in trips of kLoadsAtOnce, each waiting on its loads (the biases
// beside the logits) and then on its exps. kSplit: each logit the sum of a.splits partials, added in split order
// (lane_lse's order), kRowSplitLoadsAtOnce splits' loads of a thread in flight together.
template <typename T, bool kSplit>
__device__ __forceinline__ void bias_lse_row(BiasLseArgs a) {
  using A = acc_t<T>;
  const int c_out = static_cast<int>(a.c_out), t = static_cast<int>(threadIdx.x);
  A bias_total[kBiasLseRowLoads];  // column t + i x kBiasLseRowThreads's bias + conv_bias (0 past C_out)
  {
    const T* bias = static_cast<const T*>(a.bias);
    const T* conv_bias = static_cast<const T*>(a.conv_bias);
#pragma unroll
    for (int i = 0; i < kBiasLseRowLoads; ++i) {
      const int n = t + i * kBiasLseRowThreads;
      bias_total[i] = n < c_out ? column_bias(bias, a.bias_stride, conv_bias, n) : A(0);
    }
  }
  wait_for_previous_grid();
  const A scale = static_cast<A>(a.scale);
  const int64_t split_stride = a.batch * c_out;
  for (int64_t row = blockIdx.x; row < a.batch; row += gridDim.x) {
    // [C_out], split s's at s x split_stride (row_stride C_out); other logits may be a view of rows row_stride apart
    const A* row_logits = static_cast<const A*>(a.logits) + row * a.row_stride;
    A v[kBiasLseRowLoads];
    if constexpr (kSplit) {
      load_split_sums<kRowSplitLoadsAtOnce>(row_logits, a.splits, split_stride, t, kBiasLseRowThreads, c_out, v);
    } else {
      load_strided(row_logits, t, kBiasLseRowThreads, c_out, v);
    }
#pragma unroll
    for (int i = 0; i < kBiasLseRowLoads; ++i) {
      v[i] = t + i * kBiasLseRowThreads < c_out ? scale * v[i] + bias_total[i] : A(-INFINITY);
    }
    Lse<A> state{-INFINITY, A(0)};
    lse_push_all(state, v);
    state = block_lse<A, kBiasLseRowThreads>(state);
    if (t == 0) write_lse<T>(a, row, state);
  }
}

// Logits that are per-channel shares to add first (BiasLseArgs::channels > 1, the tap kernels' shares of padding's
// cropped GEMM), or, kWeighted (BiasLseArgs::row_sums: the gemv epilogue), shares row_sums[row, c] x W.sum[c, n],
// each logit a dot product of the row's sums with a column of W.sum: a block per row, its threads across columns and
// a.slices slices of the channels, kLoads channels in flight each (a row's few blocks wait on L2 once per trip:
// written first with 4 loads a trip, each behind a predicate kept until its add, ptxas issued them one at a time and
// the headline's padding-1 launch took 14 us, H200); the slices' sums added in order in shared memory. One launch
// where torch's sum over the channels and bias_lse took two (4.1 and 2.2 us); for the gemv epilogue, one launch
// where the tiled kernel's few column tiles each waited on a chain of depth steps, then on its merge's launch.
// kThreads: the block's threads, kGemvWideThreads for rows that kSplitThreads would walk in more trips
// (plan::gemv_lse_tiling; docs/limits.md §102).
template <typename T, bool kStaged, bool kWeighted, int kThreads = kSplitThreads>
__device__ __forceinline__ void shares_lse_rows(BiasLseArgs a) {
  using A = acc_t<T>;
  constexpr int kLoads = shares_lse_loads(sizeof(A));
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  A* staged = reinterpret_cast<A*>(shared_bytes);
  __shared__ A slice_sums[kThreads];
  // The biases are the caller's, ready before this grid starts (launch.cuh): staged while the grid ahead ends (the
  // reader, or the tap kernels' combine: 0.5 us of the headline's padded tail, H200).
  stage_biases<T, kStaged, kThreads>(a, staged);
  wait_for_previous_grid();
  const ColumnBiases<T, kStaged> biases{a, staged};
  const int columns = kThreads / a.slices;
  const int column = threadIdx.x % columns, slice = threadIdx.x / columns;
  const A scale = static_cast<A>(a.scale);
  for (int64_t row = blockIdx.x; row < a.batch; row += gridDim.x) {
    // [channels, c_out]: this row's shares, or W.sum
    const A* shares = static_cast<const A*>(a.logits) + (kWeighted ? 0 : row * a.channels * a.c_out);
    const A* factors = kWeighted ? static_cast<const A*>(a.row_sums) + row * a.channels : nullptr;  // [channels]
    Lse<A> state{-INFINITY, A(0)};
    for (int64_t n0 = 0; n0 < a.c_out; n0 += columns) {
      const int64_t n = n0 + column;
      A total = 0;
      if (n < a.c_out) {
        // Whole trips as they are, the last stopping at the channels' end (`break`: a predicate per load, kept
        // until its add, leaves ptxas issuing one load at a time; read_plane_lanes.cuh's lane_share).
        for (int64_t c0 = slice;; c0 += static_cast<int64_t>(a.slices) * kLoads) {
          A v[kLoads], factor[kWeighted ? kLoads : 1];
          int loaded = 0;
#pragma unroll
          for (int u = 0; u < kLoads; ++u) {
            const int64_t c = c0 + static_cast<int64_t>(u) * a.slices;
            if (c >= a.channels) break;
            v[u] = shares[c * a.c_out + n];
            if constexpr (kWeighted) factor[u] = factors[c];  // the block's threads read one address
            ++loaded;
          }
#pragma unroll
          for (int u = 0; u < kLoads; ++u) {
            if (u >= loaded) break;
            if constexpr (kWeighted) {
              total = fma(factor[u], v[u], total);
            } else {
              total += v[u];
            }
          }
          if (loaded < kLoads) break;
        }
      }
      slice_sums[threadIdx.x] = total;
      __syncthreads();
      if (slice == 0 && n < a.c_out) {
        A logit = 0;
        for (int k = 0; k < a.slices; ++k) logit += slice_sums[k * columns + column];
        lse_push(state, biases.biased(scale, logit, static_cast<int>(n)));
      }
      __syncthreads();  // slice_sums is the next pass's
    }
    state = block_lse<A, kThreads>(state);
    if (threadIdx.x == 0) write_lse<T>(a, row, state);
  }
}

// Column n's logit over its own group's rows alone (GroupedRowsArgs): row [channels] of the accumulation type. Only
// rows the GEMM made NaN come here, so each weight(k, n) is summed from its taps where it is read, a loop per column.
template <typename T>
__device__ __forceinline__ acc_t<T> grouped_logit(const GroupedRowsArgs& g, const acc_t<T>* row, int64_t n) {
  using A = acc_t<T>;
  const int64_t group = n / g.group_columns, first = group * g.group_rows, end = first + g.group_rows;
  A logit = 0;
  if (g.taps_h == 0) {
    const A* column = static_cast<const A*>(g.weight) + n;  // [channels] at a stride of C_out
    for (int64_t k = first; k < end; ++k) logit = fma(row[k], column[k * g.lse.c_out], logit);
    return logit;
  }
  const T* column = static_cast<const T*>(g.weight) + (n - group * g.group_columns) * g.weight_strides[1];
  for (int64_t k = first; k < end; ++k) {
    const T* taps = column + k * g.weight_strides[0];
    A weight_sum = 0;
    for (int th = 0; th < g.taps_h; ++th) {
      const T* tap_row = taps + th * g.weight_strides[2];
      for (int tw = 0; tw < g.taps_w; ++tw) weight_sum += to_acc(tap_row[tw * g.weight_strides[3]]);
    }
    logit = fma(row[k], weight_sum, logit);
  }
  return logit;
}

// Rows a thread of regroup_nan_rows checks per pass, their loads in flight together: at one row a thread and a
// barrier per kSplitThreads rows, the grouped forward of r00 (a million rows) took 4.7 us longer (H100).
constexpr int kRegroupRowsPerThread = 8;
constexpr int kRegroupPassRows = kRegroupRowsPerThread * kSplitThreads;

// Each block takes kRegroupPassRows rows at a time and lists those whose out is NaN; then the whole block redoes
// each listed row, its threads across the columns (grouped_logit), and writes it. Rows that are NaN in the model too
// (NaN in x, or +inf and -inf in one logit) come out NaN again. A row's result does not depend on the order rows
// are listed in, so the output stays the same bitwise run to run.
template <typename T> __device__ __forceinline__ void regroup_nan_rows(const GroupedRowsArgs& g) {
  using A = acc_t<T>;
  __shared__ int nan_rows[kRegroupPassRows];  // offsets in the pass
  __shared__ int nan_count;
  const BiasLseArgs& a = g.lse;
  T* out = static_cast<T*>(a.out);
  const ColumnBiases<T, false> biases{a, nullptr};
  const A scale = static_cast<A>(a.scale);
  wait_for_previous_grid();  // out is the GEMM's, just written
  for (int64_t first = int64_t{blockIdx.x} * kRegroupPassRows; first < a.batch;
       first += int64_t{gridDim.x} * kRegroupPassRows) {
    if (threadIdx.x == 0) nan_count = 0;
    __syncthreads();
    A value[kRegroupRowsPerThread];
#pragma unroll
    for (int j = 0; j < kRegroupRowsPerThread; ++j) {
      const int64_t row = first + j * kSplitThreads + threadIdx.x;
      value[j] = row < a.batch ? to_acc(out[row]) : A(0);
    }
#pragma unroll
    for (int j = 0; j < kRegroupRowsPerThread; ++j) {
      if (isnan(value[j])) nan_rows[atomicAdd(&nan_count, 1)] = j * kSplitThreads + static_cast<int>(threadIdx.x);
    }
    __syncthreads();
    const int listed = nan_count;
    for (int i = 0; i < listed; ++i) {
      const int64_t r = first + nan_rows[i];
      const A* row_sums = static_cast<const A*>(a.row_sums) + r * a.channels;
      Lse<A> state{-INFINITY, A(0)};
      for (int64_t n = threadIdx.x; n < a.c_out; n += kSplitThreads) {
        lse_push(state, biases.biased(scale, grouped_logit<T>(g, row_sums, n), static_cast<int>(n)));
      }
      state = block_lse(state);
      if (threadIdx.x == 0) write_lse<T>(a, r, state);
    }
    __syncthreads();  // nan_rows and nan_count are the next pass's
  }
}

}  // namespace
}  // namespace fusedlse
