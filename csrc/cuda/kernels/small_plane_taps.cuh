// Padding's taps of many small planes (SmallPlaneTapArgs; small_plane_taps_kernel and staged_plane_taps_kernel in
// ../taps.cu): a tap's sum of the cells it keeps, and a block's planes' values stored together.
#pragma once

#include "cut.cuh"
#include "dtype.cuh"

namespace fusedlse {
namespace {

// Tap (t, u)'s sum of the kept cells it keeps (SmallPlaneTapArgs), cell(k) the plane's kept cell k: columns first,
// then rows (tap_sums_of_cells' order); added, never subtracted.
template <typename A, typename Cell>
__device__ __forceinline__ A tap_of_kept_cells(const SmallPlaneTapArgs& a, int t, int u, Cell&& cell) {
  A total = 0;
  for (int r = a.row_first[t]; r < a.row_end[t]; ++r) {
    A row = 0;
    for (int q = a.col_first[u]; q < a.col_end[u]; ++q) row += cell(r * a.column_segments + q);
    total += row;
  }
  return total;
}

// A block's planes' values (value k of plane p at values[k * pitch + p]) to `out`, per_plane values a plane from
// plane `first` on: consecutive planes, one run of memory, consecutive threads on consecutive values.
template <typename A>
__device__ __forceinline__ void store_block_planes(A* out, int64_t first, int block_planes, int per_plane,
                                                   FastDivisor per_plane_divisor, const A* values, int pitch) {
  for (int i = threadIdx.x; i < block_planes * per_plane; i += blockDim.x) {
    const int p = static_cast<int>(divide(static_cast<uint32_t>(i), per_plane_divisor));
    out[first * per_plane + i] = values[(i - p * per_plane) * pitch + p];
  }
}

}  // namespace
}  // namespace fusedlse
