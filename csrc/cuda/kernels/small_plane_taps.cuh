// Padding's taps of many small planes (SmallPlaneTapArgs): a thread per plane (small_plane_taps) or a block per tile
// of planes staged in shared memory (staged_plane_taps), the bodies of small_plane_taps_kernel and
// staged_plane_taps_kernel (../taps.cu); a tap's sum of the cells it keeps, and a block's planes' values stored
// together.
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

// A thread per plane of at most kSmallPlaneElements elements (SmallPlaneTapArgs), its cells in shared memory (a column
// per thread: neighbouring threads' cells in neighbouring banks), then its taps beside them. Neighbouring threads read
// neighbouring planes: with C the contiguous dimension (channels_last) each load is one line across the warp; with rows
// contiguous and narrow gaps between them, by the 16-byte vectors around the plane (SmallPlaneTapArgs::vector_planes),
// the warp's first loads bring in the lines its later ones find in L1. The block's planes' cells and taps leave by the
// block's threads together, consecutive threads on consecutive values (a thread's own taps, stored by it, were 9 stores
// 36 bytes apart: H200, x [1000000, 4, 1, 1] float32, 325 us for 176 MB). kTapSums false (SmallPlaneTapArgs::sums
// null): the taps are added in shared memory but not stored, the cells alone leave (a run-time test, or skipping the
// adds, made float64 or float16 spill on sm_90).
template <typename T, bool kTapSums>
__device__ __forceinline__ void small_plane_taps(const SmallPlaneTapArgs& a) {
  using A = acc_t<T>;
  constexpr int kLoads = 8, kVec = 16 / sizeof(T), kVectorLoads = 4;
  const int threads = blockDim.x;
  const int cells = a.row_segments * a.column_segments, taps = a.taps_h * a.taps_w;
  extern __shared__ __align__(16) unsigned char small_plane_shared[];
  // Rows of a.pitch = threads + 1 values: the stores' reads, a warp across one plane's values, fall in distinct banks
  // (a pitch of `threads` put them all in one: H200 r58 [125565, 69, 2, 3] float16, k 5 x 5, with the sums, 76% of
  // the shared wavefronts excessive under Nsight Compute, docs/limits.md §61).
  const int pitch = a.pitch;
  A* block_cells = reinterpret_cast<A*>(small_plane_shared);  // [cells][pitch]
  A* block_taps = block_cells + cells * pitch;                 // [taps][pitch]
  A* own = block_cells + threadIdx.x;                          // this plane's cell k at own[k * pitch]
  const T* x = static_cast<const T*>(a.x);
  A* cells_out = static_cast<A*>(a.cells);  // [B*C, kept cells] or null
  A* sums = static_cast<A*>(a.sums);        // [B*C, taps_h * taps_w] or null (the cells alone)
  const int64_t planes = a.batch * a.channels;
  for (int64_t first = static_cast<int64_t>(blockIdx.x) * threads; first < planes;
       first += static_cast<int64_t>(gridDim.x) * threads) {
    const int64_t plane = first + threadIdx.x;
    const int block_planes = static_cast<int>(min(static_cast<int64_t>(threads), planes - first));
    if (plane < planes) {
      const int64_t b =
          a.small_channels ? divide(static_cast<uint32_t>(plane), a.channels_divisor) : plane / a.channels;
      const int64_t c = plane - b * a.channels;
      const T* base = x + b * a.stride_b + c * a.stride_c;
      for (int k = 0; k < cells; ++k) own[k * pitch] = A(0);
      // Each group's loads issued before its adds, a `break` at the plane's end rather than a predicate per load
      // (ptxas would issue the loads one at a time: docs/limits.md §32).
      if (a.vector_planes) {
        const uint4* vectors = reinterpret_cast<const uint4*>(base);  // aligned: the host checks
        const int count = a.elements / kVec;
        for (int v0 = 0; v0 < count; v0 += kVectorLoads) {
          uint4 v[kVectorLoads];
#pragma unroll
          for (int u = 0; u < kVectorLoads; ++u) {
            if (v0 + u >= count) break;
            v[u] = __ldg(vectors + v0 + u);
          }
#pragma unroll
          for (int u = 0; u < kVectorLoads; ++u) {
            if (v0 + u >= count) break;
#pragma unroll
            for (int e = 0; e < kVec; ++e) {
              const int cell = a.cell[(v0 + u) * kVec + e];
              if (cell >= 0) own[cell * pitch] += vec_elem<T>(v[u], e);
            }
          }
        }
      } else {
        loads_then_stores<kLoads, T>(
            0, a.elements, 1, [&](int k) { return __ldg(base + a.offset[k]); },
            [&](int k, T v) { own[a.cell[k] * pitch] += to_acc(v); });
      }
      for (int t = 0; t < a.taps_h; ++t) {
        for (int u = 0; u < a.taps_w; ++u) {
          block_taps[(t * a.taps_w + u) * pitch + threadIdx.x] =
              tap_of_kept_cells<A>(a, t, u, [&](int k) { return own[k * pitch]; });
        }
      }
    }
    __syncthreads();
    if (kTapSums) store_block_planes(sums, first, block_planes, taps, a.taps_divisor, block_taps, pitch);
    if (cells_out != nullptr) {
      store_block_planes(cells_out, first, block_planes, cells, a.cells_divisor, block_cells, pitch);
    }
    __syncthreads();  // the next planes' cells overwrite these
  }
}

// Many small planes (SmallPlaneTapArgs::staged_planes), a block per tile of consecutive planes: the tile is copied
// into shared memory by coalesced loads, then each kept cell is added over its rectangle there, a thread per (cell,
// plane), then each tap's cells as small_plane_taps_kernel adds them (the same order: bitwise its sums). The thread
// per plane of that kernel reads its plane alone, a warp's load touching 32 planes' lines: H200, r26 of the sweep
// ([500741, 18, 3, 6] float16, rows 8 apart) took 737 us for its cells where the padding-0 reader took 164; the tap
// kernels' warp per run of rows and per plane, on r42's 1.6 million planes of 4 x 43, 3.0 ms (docs/limits.md §80).
template <typename T, bool kTapSums>
__device__ __forceinline__ void staged_plane_taps(const SmallPlaneTapArgs& a) {
  using A = acc_t<T>;
  constexpr int kLoads = 8;
  const int threads = blockDim.x, t = threadIdx.x;
  const int tile = a.staged_planes, pitch = a.plane_pitch, value_pitch = tile + 1;
  const int elements = a.height * a.width;
  const int cells = a.row_segments * a.column_segments, taps = a.taps_h * a.taps_w;
  const int tile_shift = __ffs(tile) - 1;
  extern __shared__ __align__(16) unsigned char staged_plane_shared[];
  int64_t* plane_start = reinterpret_cast<int64_t*>(staged_plane_shared);  // [tile]: each plane's first element
  int64_t* element_offset = plane_start + tile;                             // [H * W]: element k's from there
  A* stage = reinterpret_cast<A*>(element_offset + elements);              // [tile][pitch]: the planes' values
  A* block_cells = stage + tile * pitch;                                    // [cells][tile + 1]
  A* block_taps = block_cells + cells * value_pitch;                        // [taps][tile + 1]
  const T* x = static_cast<const T*>(a.x);  // [B, C, H, W]: plane (b, c) at b*stride_b + c*stride_c
  A* cells_out = static_cast<A*>(a.cells);  // [B*C, kept cells] or null
  A* sums = static_cast<A*>(a.sums);        // [B*C, taps_h * taps_w] (kTapSums)
  for (int k = t; k < elements; k += threads) {
    const int i = k / a.width;
    element_offset[k] = i * a.stride_h + (k - i * a.width) * a.stride_w;
  }
  // Channel order: this thread stages plane `fixed`, elements first_other, first_other + other_step, ...; else
  // element `fixed` of planes first_other, first_other + other_step, ... Threads past other_step's whole groups idle.
  const int group = a.channel_order ? tile : elements;
  const int fixed = t % group, first_other = t / group, other_step = threads / group;
  const int64_t planes = a.batch * a.channels;
  for (int64_t first = static_cast<int64_t>(blockIdx.x) * tile; first < planes;
       first += static_cast<int64_t>(gridDim.x) * tile) {
    const int block_planes = static_cast<int>(min(static_cast<int64_t>(tile), planes - first));
    for (int p = t; p < block_planes; p += threads) {
      const int64_t q = first + p;
      const int64_t b = a.small_channels ? divide(static_cast<uint32_t>(q), a.channels_divisor) : q / a.channels;
      plane_start[p] = b * a.stride_b + (q - b * a.channels) * a.stride_c;
    }
    __syncthreads();  // also the element offsets, the first time
    if (first_other < other_step && !a.channel_order) {
      const int64_t offset = element_offset[fixed];
      loads_then_stores<kLoads, T>(
          first_other, block_planes, other_step, [&](int p) { return __ldg(x + plane_start[p] + offset); },
          [&](int p, T v) { stage[p * pitch + fixed] = to_acc(v); });
    } else if (first_other < other_step && fixed < block_planes) {
      const T* plane = x + plane_start[fixed];
      A* staged = stage + fixed * pitch;
      loads_then_stores<kLoads, T>(
          first_other, elements, other_step, [&](int k) { return __ldg(plane + element_offset[k]); },
          [&](int k, T v) { staged[k] = to_acc(v); });
    }
    __syncthreads();
    // A warp's threads on neighbouring planes of one cell: the same rectangle, rows pitch (odd) apart in the banks.
    for (int item = t; item < cells << tile_shift; item += threads) {
      const int cell = item >> tile_shift, p = item - (cell << tile_shift);
      if (p < block_planes) {
        const int r = cell / a.column_segments, q = cell - r * a.column_segments;
        const A* values = stage + p * pitch;
        A total = 0;
        for (int i = a.row_start[r]; i < a.row_stop[r]; ++i) {
          for (int j = a.col_start[q]; j < a.col_stop[q]; ++j) total += values[i * a.width + j];
        }
        block_cells[cell * value_pitch + p] = total;
      }
    }
    __syncthreads();
    if constexpr (kTapSums) {
      for (int item = t; item < taps << tile_shift; item += threads) {
        const int tap = item >> tile_shift, p = item - (tap << tile_shift);
        if (p < block_planes) {
          const int th = tap / a.taps_w, tw = tap - th * a.taps_w;
          block_taps[tap * value_pitch + p] =
              tap_of_kept_cells<A>(a, th, tw, [&](int k) { return block_cells[k * value_pitch + p]; });
        }
      }
      __syncthreads();
      store_block_planes(sums, first, block_planes, taps, a.taps_divisor, block_taps, value_pitch);
    }
    if (cells_out != nullptr) {
      store_block_planes(cells_out, first, block_planes, cells, a.cells_divisor, block_cells, value_pitch);
    }
    __syncthreads();  // the next tile's planes overwrite these
  }
}

}  // namespace
}  // namespace fusedlse
