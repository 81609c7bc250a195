// Padding's tap reader (TapSumsArgs): what a lane adds of a run's middle rows, the middle columns' sum and each border
// column's (RunSums), and the order those partials leave it in. The readers that fill it are read_tap_rows.cuh and
// read_tap_channels.cuh; the kernels are in ../taps.cu.
#pragma once

#include "cut.cuh"
#include "load.cuh"

namespace fusedlse {
namespace {

// What a lane's loads of a run's middle rows add: the middle columns' sum, and per border column (the first
// cols.head columns, then the last cols.tail) a sum of its own, taken from the same loads (loading the border
// columns apart, a column at a time after each group of rows, made the headline's padded read 290 us against 252:
// bench/experiments/tap_reader.cu, docs/limits.md §30). Borders of at most kSide columns a side (kSide 1 or 2) keep
// theirs in registers, head[k] for column k and tail[k] for column W - kSide + k (a static index: a compare per
// column; 4 a side spilled registers under tap_grid_kernel's cap; 3, kVectorBorderSide, only on whole-vector rows);
// wider ones (kSide 0) in shared memory, a lane's own values indexed at run time (no atomics: no two lanes add to
// one value, and the order is fixed).
template <typename A, int kSide> struct RunSums {
  A middle = 0;
  A head[kSide > 0 ? kSide : 1] = {}, tail[kSide > 0 ? kSide : 1] = {};
  A* lane_sums;  // kSide 0: [border columns][32] of this warp's, offset to this lane's: column k at lane_sums[32 * k]
  int32_t first_col, end_col, width;

  // The element at column `col` of a row; a column at or past W (a gap between rows) adds nothing.
  __device__ __forceinline__ void add(int32_t col, A value) {
    if (col >= first_col && col < end_col) {
      middle += value;
    } else if (col < width) {
      if constexpr (kSide > 0) {
#pragma unroll
        for (int k = 0; k < kSide; ++k) {
          if (col == k) head[k] += value;
          if (col == width - kSide + k) tail[k] += value;
        }
      } else {
        lane_sums[32 * (col < first_col ? col : first_col + (col - end_col))] += value;
      }
    }
  }
};

// Border column k of a row (the first cols.head, then the last cols.tail: border_column) into its sum, by the index
// rather than the column (no compare against the middle's).
template <typename A, int kSide>
__device__ __forceinline__ void add_border_column(RunSums<A, kSide>& sums, const TapCutGeometry& cols, int k,
                                                  A value) {
  if constexpr (kSide > 0) {
    // head[j] holds column j, tail[j] column W - kSide + j: tail column k - cols.head.
#pragma unroll
    for (int j = 0; j < kSide; ++j) {
      if (k == j && k < cols.head) sums.head[j] += value;
      if (k >= cols.head && k - cols.head == j - (kSide - cols.tail)) sums.tail[j] += value;
    }
  } else {
    sums.lane_sums[32 * k] += value;
  }
}

// A vector of a whole-vector row (TapSumsArgs::whole_vector_rows; kSide 1 to kVectorBorderSide) that starts at column
// `col` < W: its middle columns into sums.middle, its first kSide into head[] where it is a row's first vector, its
// last kSide into tail[] where it is a row's last. Every vector takes the same instructions, the border ones' choices
// by selects: a warp meets a row's first or last vector on nearly every trip, and a branch for them made it run both
// paths (H200, r33 of the sweep [7000, 40, 6, 168] bfloat16 at padding 1: 949 warp instructions a plane where the
// padding-0 reader takes 181; docs/limits.md §82).
template <typename T, int kSide>
__device__ __forceinline__ void add_whole_vector(RunSums<acc_t<T>, kSide>& sums, int32_t col, const uint4& v) {
  using A = acc_t<T>;
  constexpr int kVec = 16 / sizeof(T);
  static_assert(kSide >= 1 && kSide <= kVec, "a side's border columns within one vector");
  const bool first = col == 0, last = col + kVec == sums.width;
  const int32_t head = sums.first_col, tail = sums.width - sums.end_col;
  A e[kVec], kept[kVec];
#pragma unroll
  for (int k = 0; k < kVec; ++k) {
    e[k] = vec_elem<T>(v, k);
    // Element k is a middle one unless it lies in the row's first `head` columns or last `tail` ones; only the first
    // and last kSide of a vector can (static tests on k fold the others to a plain add).
    const bool left = k >= kSide || !first || k >= head;
    const bool right = k < kVec - kSide || !last || k < kVec - tail;
    kept[k] = left && right ? e[k] : A(0);
  }
  // Pairs first, as vec_sum adds a vector.
#pragma unroll
  for (int width = 1; width < kVec; width *= 2) {
#pragma unroll
    for (int k = 0; k + width < kVec; k += 2 * width) kept[k] += kept[k + width];
  }
  sums.middle += kept[0];
#pragma unroll
  for (int k = 0; k < kSide; ++k) {
    sums.head[k] += first ? e[k] : A(0);
    sums.tail[k] += last ? e[kVec - kSide + k] : A(0);
  }
}

// f(k, value) for each of a run's partials (TapSumsArgs::partials): k = 0 the middle columns' sum, k = 1 + j border
// column j's (the first cols.head columns, then the last cols.tail), from this lane's `sums`.
template <typename A, int kSide, typename F>
__device__ __forceinline__ void for_each_partial(const RunSums<A, kSide>& sums, const TapCutGeometry& cols, F&& f) {
  f(0, sums.middle);
  if constexpr (kSide > 0) {
    // tail[k] holds column W - kSide + k: tail column k - (kSide - cols.tail).
#pragma unroll
    for (int k = 0; k < kSide; ++k) {
      const int tail_col = k - (kSide - cols.tail);
      if (k < cols.head) f(1 + k, sums.head[k]);
      if (tail_col >= 0) f(1 + cols.head + tail_col, sums.tail[k]);
    }
  } else {
    for (int k = 0; k < cols.head + cols.tail; ++k) f(1 + k, sums.lane_sums[32 * k]);
  }
}

// Plane `plane`'s cells of the reader's grid (TapSumsArgs::grid): [row segments, col segments].
template <typename A> __device__ __forceinline__ A* plane_cells(const TapSumsArgs& a, int64_t plane) {
  return static_cast<A*>(a.grid) + plane * a.rows.segments * a.cols.segments;
}

// The column segment (a cell's place in a row of the grid) of partial k (for_each_partial): the middle one for k = 0
// (only where there is a middle column), else border column k - 1's.
__device__ __forceinline__ int partial_column_segment(int k, const TapCutGeometry& cols, bool middle_col) {
  const int border = k - 1;
  return k == 0 ? cols.head : border < cols.head ? border : border + (middle_col ? 1 : 0);
}

// The border rows among rows [first, end) of a plane: those before rows.head, then those from H - rows.tail on,
// counted rather than walked (a loop over every row of a run that skipped its middle ones cost tens of instructions a
// row: runs of thousands of rows of one element took 2.5 ms where the read took 150 us, H200). row(k), k < count.
struct BorderRows {
  int32_t first, head_rows, tail_from, count;
  __device__ __forceinline__ int32_t row(int32_t k) const {
    return k < head_rows ? first + k : tail_from + (k - head_rows);
  }
};
__device__ __forceinline__ BorderRows border_rows_of(const TapSumsArgs& a, int32_t height, int32_t first, int32_t end) {
  const int32_t head_rows = max(0, min(end, a.rows.head) - first);
  const int32_t tail_from = max(first, max(a.rows.head, height - a.rows.tail));
  return {first, head_rows, tail_from, head_rows + max(0, end - tail_from)};
}

// The column of a border row that lane k < cols.head + cols.tail takes: the first cols.head, then the last cols.tail.
__device__ __forceinline__ int32_t border_column(const TapCutGeometry& cols, int32_t width, int lane) {
  return lane < cols.head ? lane : width - cols.tail + (lane - cols.head);
}

}  // namespace
}  // namespace fusedlse
