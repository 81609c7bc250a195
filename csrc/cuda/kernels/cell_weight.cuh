// The cropped GEMM's weight over cells (CellWeightArgs): each kept cell's weight, the sum of the weights of the taps
// that keep it, a thread per value (cell_weight_values) or per pair of channels (cell_weight_pairs), the bodies of
// ../taps.cu's cell_weight_values_kernel and cell_weight_pairs_kernel.
#pragma once

#include "../launch.cuh"
#include "load.cuh"

namespace fusedlse {
namespace {

// A thread per output value (CellWeightArgs), consecutive threads on consecutive columns n: the writes whole lines,
// the reads a kernel's taps apart, each cell loading its taps again (CellWeightArgs::by_pairs false: kernels of more
// than kCellWeightRegisterTaps taps, and pairs too few to fill the device).
template <typename T>
__device__ __forceinline__ void cell_weight_values(const CellWeightArgs& a) {
  using A = acc_t<T>;
  wait_for_previous_grid();  // `out` may be memory an earlier grid of ours still reads
  const T* weight = static_cast<const T*>(a.weight);  // [C_in, C_out / groups, kH, kW]
  A* out = static_cast<A*>(a.out);                     // [C_in, cells, C_out]
  const int cells = a.kept_rows * a.kept_cols;
  const int64_t total = a.in_channels * cells * a.out_channels;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kBlockThreads + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * kBlockThreads) {
    const int64_t n = i % a.out_channels, rest = i / a.out_channels;
    const int cell = static_cast<int>(rest % cells);
    const int64_t c = rest / cells;
    const int r = cell / a.kept_cols, q = cell - r * a.kept_cols;
    const int64_t first_tap = grouped_taps_offset(c * a.out_channels + n, a.in_channels, a.out_channels, a.groups,
                                                  a.kernel_h * a.kernel_w);
    A value = 0;
    if (first_tap >= 0) {
      const T* taps = weight + first_tap;  // [kH, kW]
      for (int t = a.row_tap_first[r]; t < a.row_tap_end[r]; ++t) {
        for (int u = a.col_tap_first[q]; u < a.col_tap_end[q]; ++u) value += to_acc(__ldg(taps + t * a.kernel_w + u));
      }
    }
    out[i] = value;
  }
}

// A thread per pair (c, n) of an input and an output channel (CellWeightArgs), consecutive threads on consecutive
// columns n: the pair's kTaps or fewer taps loaded once, all in flight, into registers; then each kept cell's sum of
// the taps that keep it (a mask over the taps, added in the values kernel's order: bitwise its result), written at
// [c, cell, n], whole lines across the warp. A warp's load spans as many lines as a kernel's taps are wide, and the
// values kernel loads each pair's taps once per cell: r55 of the H200 sweep ([33, 3239, 5, 3] float64, 9 cells,
// about 90 loads a pair) took 38.1 us there (docs/limits.md §60).
template <typename T, int kTaps>
__device__ __forceinline__ void cell_weight_pairs(const CellWeightArgs& a) {
  using A = acc_t<T>;
  static_assert(kTaps <= 64, "a cell's taps are a 64-bit mask");
  wait_for_previous_grid();  // `out` may be memory an earlier grid of ours still reads
  const T* weight = static_cast<const T*>(a.weight);  // [C_in, C_out / groups, kH, kW]
  A* out = static_cast<A*>(a.out);                     // [C_in, cells, C_out]
  const int taps = static_cast<int>(a.kernel_h * a.kernel_w), kernel_w = static_cast<int>(a.kernel_w);
  const int cells = a.kept_rows * a.kept_cols;
  const int64_t pairs = a.in_channels * a.out_channels;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kBlockThreads + threadIdx.x; i < pairs;
       i += static_cast<int64_t>(gridDim.x) * kBlockThreads) {
    const int64_t c = i / a.out_channels, n = i - c * a.out_channels;
    const int64_t first_tap = grouped_taps_offset(i, a.in_channels, a.out_channels, a.groups, taps);
    const T* pair_taps = weight + (first_tap >= 0 ? first_tap : 0);  // [kH, kW]
    A w[kTaps];
#pragma unroll
    for (int j = 0; j < kTaps; ++j) w[j] = first_tap >= 0 && j < taps ? to_acc(__ldg(pair_taps + j)) : A(0);
    A* pair_out = out + c * cells * a.out_channels + n;  // cell k at pair_out[k * C_out]
    for (int cell = 0; cell < cells; ++cell) {
      const int r = cell / a.kept_cols, q = cell - r * a.kept_cols;
      const uint64_t row_taps = ((uint64_t{1} << (a.col_tap_end[q] - a.col_tap_first[q])) - 1) << a.col_tap_first[q];
      uint64_t kept = 0;
      for (int t = a.row_tap_first[r]; t < a.row_tap_end[r]; ++t) kept |= row_taps << (t * kernel_w);
      A value = 0;
#pragma unroll
      for (int j = 0; j < kTaps; ++j) {
        if ((kept >> j) & 1u) value += w[j];
      }
      pair_out[int64_t{cell} * a.out_channels] = value;
    }
  }
}

}  // namespace
}  // namespace fusedlse
