// padding's per-tap sums (the forward's read of x when padding > 0) and their adjoint's first step (each segment
// pair's value; broadcast_hw.cu writes grad_x from them), for the shapes the kernels take (kernels.h: TapSumsArgs,
// TapBroadcastArgs); fusedlse.cpp's ATen code computes the same for the others. Sums are only ever added, in an
// order fixed by the shape, never subtracted: an infinity in a cropped border reaches only the taps that keep it, and
// results are bitwise reproducible.
// Only CUDA headers are included: see kernels.h.

#include "kernels.h"
#include "kernels/cut.cuh"
#include "kernels/dtype.cuh"
#include "kernels/load.cuh"
#include "kernels/reduce.cuh"
#include "launch.cuh"

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

// The column segment (a cell's place in a row of the grid) of partial k (for_each_partial): the middle one for k = 0
// (only where there is a middle column), else border column k - 1's.
__device__ __forceinline__ int partial_column_segment(int k, const TapCutGeometry& cols, bool middle_col) {
  const int border = k - 1;
  return k == 0 ? cols.head : border < cols.head ? border : border + (middle_col ? 1 : 0);
}

// The middle rows [first_row, first_row + row_count) of a plane (this lane's share) by 16-byte loads of the memory
// they span, row after row with any gap between them (TapSumsArgs::span_walk): lanes take the aligned vectors in
// turn, kTapVectorLoads in flight each, and the few elements before the first and after the last. A vector within a
// row's middle columns adds whole; any other element by element, its column stepping on and wrapping into the next
// row as often as the vector crosses one (rows narrower than a vector: several times). Aligned whole rows are the
// case without wraps or gaps.
template <typename T, bool kEvictFirst, int kSide>
__device__ __forceinline__ void span_walk(const T* plane_base, const TapSumsArgs& a, int32_t first_row,
                                          int32_t row_count, int lane, RunSums<acc_t<T>, kSide>& sums) {
  constexpr int kVec = 16 / sizeof(T);
  constexpr int kLoads = kTapVectorLoads;
  const int32_t stride = static_cast<int32_t>(a.stride_h);
  const T* rows = plane_base + first_row * a.stride_h;
  const uint32_t span = static_cast<uint32_t>(row_count - 1) * stride + static_cast<uint32_t>(a.width);
  const uint32_t lead =
      min(span, static_cast<uint32_t>((16 - reinterpret_cast<uintptr_t>(rows) % 16) % 16 / sizeof(T)));
  const uint32_t vectors = (span - lead) / kVec;
  const uint4* aligned = reinterpret_cast<const uint4*>(rows + lead);
#pragma unroll 1
  for (uint32_t base = lane; base < vectors; base += 32 * kLoads) {
    uint4 v[kLoads];
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      const uint32_t e = base + 32 * u;
      v[u] = e < vectors ? load_once<kEvictFirst>(aligned + e) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      // The vector's position again rather than kept from the loads: registers for the loads.
      const uint32_t e = base + 32 * u;
      const uint32_t offset = lead + e * kVec;
      const int32_t col = static_cast<int32_t>(offset - divide(offset, a.row_stride) * stride);
      if (e >= vectors) continue;
      if constexpr (kSide > 0 && kSide <= kVec && sizeof(T) < 8) {
        // Every vector within a row or within a gap between rows (those add nothing). float64's vectors of two take
        // the paths below: through add_whole_vector tap_grid_kernel<double, 2, kRowsWalk> spilled registers (sm_89).
        if (kSide == kVectorBorderSide || a.whole_vector_rows) {
          if (col < sums.width) add_whole_vector<T, kSide>(sums, col, v[u]);
          continue;
        }
      }
      if (col >= sums.first_col && col + kVec <= sums.end_col) {
        sums.middle += vec_sum<T>(v[u]);
      } else if (kSide == 1 && a.width == 1 && stride == 1) {
        // Rows of one element with no gap between them (the span walk's only case for W = 1: rows_span_walk), a
        // column: one add of the vector's sum, not kVec through RunSums::add (H200, sweep shape r30 [66, 12, 25977,
        // 1] float16 at padding 1: this kernel took 35.6 us where the padding-0 reader took 14.6). A column of one
        // has borders of at most 1 (tap_border_side); the other sides' kernels without this branch keep from
        // spilling under tap_grid_kernel's cap.
        sums.add(0, vec_sum<T>(v[u]));
      } else if (kSide == 0 && a.whole_vector_rows) {
        // Every vector within a row, the border columns in shared memory (at most kVec a side) in its first and
        // last: a compare per vector, not per element (a warp meets a border vector on nearly every trip, and pays
        // for its path: H200 headline bf16, padding 1, 228 us element by element through RunSums::add, 171 so).
#pragma unroll
        for (int k = 0; k < kVec; ++k) {
          if (col + k >= sums.first_col && col + k < sums.end_col) sums.middle += vec_elem<T>(v[u], k);
        }
        // Column k of the first vector is head column k; column kVec - tail + j of the last, tail column j. A slot
        // per element of both vectors instead (no compare per element) measured the same: 113.9 against 115.0
        // million instructions on the headline's padding 3, 1.071 against 1.072-1.077 of padding 0's forward (H200,
        // docs/limits.md §40).
        const int32_t tail = sums.width - sums.end_col;
        if (col == 0) {
#pragma unroll
          for (int k = 0; k < kVec; ++k) {
            if (k < sums.first_col) sums.lane_sums[32 * k] += vec_elem<T>(v[u], k);
          }
        }
        if (col + kVec == sums.width) {
#pragma unroll
          for (int k = 0; k < kVec; ++k) {
            const int32_t j = k - (kVec - tail);
            if (j >= 0) sums.lane_sums[32 * (sums.first_col + j)] += vec_elem<T>(v[u], k);
          }
        }
      } else if constexpr (kSide != kVectorBorderSide) {
        int32_t element_col = col;
#pragma unroll
        for (int k = 0; k < kVec; ++k) {
          sums.add(element_col, vec_elem<T>(v[u], k));
          element_col = element_col + 1 == stride ? 0 : element_col + 1;
        }
      }
    }
  }
  // Whole-vector rows start on a vector and span whole vectors: no elements outside them.
  if constexpr (kSide == kVectorBorderSide) return;
  // The elements before the first whole vector and after the last: fewer than kVec each, a lane each.
  const uint32_t trail = lead + vectors * kVec;
  const uint32_t offset = lane < kVec ? lane : trail + (lane - kVec);
  if ((lane < kVec && offset < lead) || (lane >= kVec && lane < 2 * kVec && offset < span)) {
    sums.add(static_cast<int32_t>(offset - divide(offset, a.row_stride) * stride), to_acc(__ldg(rows + offset)));
  }
}

// The middle rows [first_row, first_row + row_count) of a plane (this lane's share) through the warp's stage in shared
// memory (TapSumsArgs::stage_rows; rows that are not whole 16-byte vectors): pieces of stage_rows rows, each loaded
// as the span walk loads it (16-byte loads of the memory it spans, gaps and all, kTapVectorLoads in flight a lane, the
// few elements outside whole vectors a lane each) and stored as it lies, then each lane adds its column of the
// piece's rows from there, 32 columns apart (rows under 16 elements: 32 / W rows at once, a column a lane) and its
// column's sum into RunSums once a piece. The span walk sends every vector that straddles a row's end or a border
// column through RunSums::add element by element, a compare chain each, and a warp pays that path on nearly every
// trip: here an element is a shared load and an add whatever W.
template <typename T, bool kEvictFirst, int kSide>
__device__ __forceinline__ void staged_walk(const T* plane_base, const TapSumsArgs& a, int32_t first_row,
                                            int32_t row_count, int lane, T* stage, RunSums<acc_t<T>, kSide>& sums) {
  using A = acc_t<T>;
  constexpr int kVec = 16 / sizeof(T);
  constexpr int kLoads = kTapVectorLoads;
  const int32_t end_row = first_row + row_count;
  uint4* stage_vectors = reinterpret_cast<uint4*>(stage);
#pragma unroll 1
  for (int32_t piece = first_row; piece < end_row; piece += a.stage_rows) {
    const int32_t rows = min(a.stage_rows, end_row - piece);
    // The stage holds the piece from the 16-byte boundary at or before its first element: `lead` elements before it.
    const T* start = plane_base + piece * a.stride_h;
    const uint32_t lead = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(start) % 16 / sizeof(T));
    const uint32_t stage_end = lead + static_cast<uint32_t>(rows - 1) * static_cast<uint32_t>(a.stride_h) +
                               static_cast<uint32_t>(a.width);  // the piece's end in the stage
    const uint32_t first_vector = lead > 0 ? 1 : 0, end_vector = stage_end / kVec;
#pragma unroll 1
    for (uint32_t base = first_vector + lane; base < end_vector; base += 32 * kLoads) {
      uint4 v[kLoads];
#pragma unroll
      for (int u = 0; u < kLoads; ++u) {
        const uint32_t e = base + 32 * u;
        v[u] = e < end_vector ? load_once<kEvictFirst>(reinterpret_cast<const uint4*>(start - lead) + e)
                              : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int u = 0; u < kLoads; ++u) {
        if (base + 32 * u < end_vector) stage_vectors[base + 32 * u] = v[u];
      }
    }
    // The elements outside whole vectors: after `lead` in the first granule, and from the last whole vector's end.
    const uint32_t at = lane < kVec ? lead + lane : max(first_vector, end_vector) * kVec + (lane - kVec);
    if ((lane < kVec && at < min(first_vector * kVec, stage_end)) ||
        (lane >= kVec && lane < 2 * kVec && at < stage_end)) {
      stage[at] = start[at - lead];
    }
    __syncwarp();
    // A lane's column, and its first row and row step: rows narrower than a warp take 32 / W rows at once (lanes past
    // them idle), wider ones a column a lane, 32 apart.
    const int32_t width = static_cast<int32_t>(a.width), stride = static_cast<int32_t>(a.stride_h);
    const int32_t row_lanes = width < 32 ? 32 / width : 1;
    const int32_t lane_row = width < 32 ? lane / width : 0;
    if (lane_row < row_lanes) {
      // The lane's rows of the piece, lane_row, lane_row + row_lanes, ..., each `step` elements after the last.
      const int32_t lane_rows = (rows - lane_row + row_lanes - 1) / row_lanes, step = row_lanes * stride;
#pragma unroll 1
      for (int32_t col = lane - lane_row * width; col < width; col += 32) {
        // kTapStageLoads shared loads in flight, then their adds in row order (a loop of a load, its add and an exit
        // test per element left each load's latency to its add: sm_90 SASS).
        A column = 0;
        const T* element = stage + lead + lane_row * stride + col;
#pragma unroll 1
        for (int32_t j = 0; j < lane_rows; j += kTapStageLoads, element += kTapStageLoads * step) {
          load_trip<T, kTapStageLoads>(
              lane_rows - j, [&](int u) { return element[u * step]; }, [&](T value) { column += to_acc(value); });
        }
        sums.add(col, column);
      }
    }
    __syncwarp();  // the next piece rewrites the stage
  }
}

// The same by a load per element, where the gaps between rows are too wide to load (TapSumsArgs::span_walk false):
// the rows' elements walked flat, lanes taking them in turn, kTapUnroll in flight each whatever W is. A lane's next
// element is 32 further: 32 / W rows and 32 % W columns on (TapSumsArgs::element_step_*, read from the launch's
// parameters where they are used: computed here they took registers, and float64's spilled under tap_grid_kernel's
// cap), then at most one wrap into the next row, with no division and no address kept per load (registers for the
// loads).
template <typename T, int kSide>
__device__ __forceinline__ void element_walk(const T* plane_base, const TapSumsArgs& a, int32_t first_row,
                                             int32_t row_count, int lane, RunSums<acc_t<T>, kSide>& sums) {
  using A = acc_t<T>;
  constexpr int kLoads = kTapUnroll;
  const int32_t width = static_cast<int32_t>(a.width);
  const uint32_t count = static_cast<uint32_t>(row_count) * static_cast<uint32_t>(width);
  const T* rows = plane_base + first_row * a.stride_h;
#pragma unroll 1
  for (uint32_t base = lane; base < count; base += 32 * kLoads) {
    const uint32_t base_row = divide(base, a.row_elements);
    const int32_t base_col = static_cast<int32_t>(base - base_row * width);
    A v[kLoads];
    const T* row = rows + base_row * a.stride_h;
    int32_t col = base_col;
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      v[u] = base + 32 * u < count ? to_acc(__ldg(row + col)) : A(0);
      col += a.element_step_cols;
      row += a.element_step_offset;
      if (col >= width) col -= width, row += a.stride_h;
    }
    col = base_col;
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      if (base + 32 * u < count) sums.add(col, v[u]);
      col += a.element_step_cols;
      if (col >= width) col -= width;
    }
  }
}

// A border row's middle columns [first, end) summed by the warp (tap_run): by 16-byte loads of the vectors they touch,
// lanes in turn, two trips in flight, each element kept by a compare (a vector's other elements lie in the same 16
// bytes as a kept one: no line DRAM would not fetch anyway). A scalar load per element, eight in flight, took most of
// r33's 949 warp instructions a plane ([7000, 40, 6, 168] bfloat16 at padding 1, H200, docs/limits.md §82). float64
// still loads an element at a time, two in flight: its vectors of two, or four or eight scalar loads in flight,
// spilled tap_grid_kernel<double, 0, kRowsWalk> on sm_90; so did every type's vectors with four loads in flight, and
// two border rows at once.
template <typename T, bool kEvictFirst>
__device__ __forceinline__ acc_t<T> border_row_middle(const T* row, uint32_t first, uint32_t end, int lane) {
  // 32-bit unsigned positions of vectors (W is under 2^31, tap_path: no wrap past 2^32), a vector's columns before
  // the row's first wrapping to 2^32 - lead.. and failing `< end`; float64's in 64 bits (in 32, <double, 0,
  // kRowsWalk> spilled on sm_90).
  using A = acc_t<T>;
  A sum = A(0);
  if constexpr (sizeof(T) == 8) {
#pragma unroll 2
    for (int64_t c = first + lane; c < end; c += 32) sum += load_once<kEvictFirst>(row + c);
  } else {
    constexpr uint32_t kVec = 16 / sizeof(T);
    // Vector v holds the row's columns v * kVec - lead on.
    const uint32_t lead = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(row) % 16 / sizeof(T));
    const uint4* vectors = reinterpret_cast<const uint4*>(row - lead);
    const uint32_t end_vector = (end + lead + kVec - 1) / kVec;
#pragma unroll 2
    for (uint32_t v = (first + lead) / kVec + lane; v < end_vector; v += 32) {
      const uint4 x = load_once<kEvictFirst>(vectors + v);
      const uint32_t col = v * kVec - lead;
      A kept[kVec];
#pragma unroll
      for (uint32_t k = 0; k < kVec; ++k) kept[k] = col + k >= first && col + k < end ? vec_elem<T>(x, k) : A(0);
      // Pairs first, as vec_sum adds a vector.
#pragma unroll
      for (uint32_t width = 1; width < kVec; width *= 2) {
#pragma unroll
        for (uint32_t k = 0; k + width < kVec; k += 2 * width) kept[k] += kept[k + width];
      }
      sum += kept[0];
    }
  }
  return warp_sum(sum);
}

// Run `unit` (plane unit / chunks, rows [first_row, end_row)): its middle rows' partials (the middle columns' sum,
// then each border column's, from the same loads) into `partials`, its border rows' cells into the plane's cells of
// `grid`. Row and column indices are 32-bit (tap_path) and the output addresses are made after the loads: registers
// for the loads.
template <typename T, bool kEvictFirst, int kSide, bool kStaged>
__device__ __forceinline__ void tap_run(const TapSumsArgs& a, int64_t unit, int lane, acc_t<T>* warp_border_sums,
                                        T* warp_stage) {
  using A = acc_t<T>;
  const int64_t plane = unit / a.chunks;
  const int32_t chunk = static_cast<int32_t>(unit - plane * a.chunks);
  const int64_t b = plane / a.channels, c = plane - b * a.channels;
  const T* base = static_cast<const T*>(a.x) + b * a.stride_b + c * a.stride_c;  // [H, W], rows contiguous
  const int32_t height = static_cast<int32_t>(a.height), width = static_cast<int32_t>(a.width);
  const int32_t first_row = chunk * static_cast<int32_t>(a.chunk_rows);
  const int32_t end_row = min(first_row + static_cast<int32_t>(a.chunk_rows), height);
  const int border_cols = a.cols.head + a.cols.tail;
  RunSums<A, kSide> sums;
  sums.lane_sums = warp_border_sums + lane;
  sums.first_col = a.cols.head;
  sums.end_col = width - a.cols.tail;
  sums.width = width;
  if constexpr (kSide == 0) {
    for (int k = 0; k < border_cols; ++k) sums.lane_sums[32 * k] = 0;
  }
  // The run's middle rows [middle_first, middle_end); its border rows are the others.
  const int32_t middle_first = max(first_row, a.rows.head);
  const int32_t middle_end = min(end_row, height - a.rows.tail);
  if (middle_first < middle_end) {
    if constexpr (kSide == kVectorBorderSide) {
      span_walk<T, kEvictFirst, kSide>(base, a, middle_first, middle_end - middle_first, lane, sums);
    } else if constexpr (kStaged) {
      staged_walk<T, kEvictFirst, kSide>(base, a, middle_first, middle_end - middle_first, lane, warp_stage, sums);
    } else if (a.span_walk) {
      span_walk<T, kEvictFirst, kSide>(base, a, middle_first, middle_end - middle_first, lane, sums);
    } else {
      element_walk<T, kSide>(base, a, middle_first, middle_end - middle_first, lane, sums);
    }
  }
  A* part = static_cast<A*>(a.partials) + unit * (1 + border_cols);  // [1 + border columns]
  // (Which partials there are is the same for the whole warp: every lane takes part in each warp_sum.)
  for_each_partial(sums, a.cols, [&](int k, A value) {
    const A total = warp_sum(value);
    if (lane == 0) part[k] = total;
  });
  // Lane k < border_cols takes border column k of a border row: the first cols.head, then the last cols.tail.
  const int32_t own_col = lane < a.cols.head ? lane : width - a.cols.tail + (lane - a.cols.head);
  const bool middle_col = width - a.cols.tail > a.cols.head;
  A* cells = static_cast<A*>(a.grid) + plane * a.rows.segments * a.cols.segments;  // [row segments, col segments]
  // The run's border rows, each a row of the grid's cells: those before rows.head, then those from H - rows.tail on
  // (the first rows.head where the two overlap), counted rather than walked (a loop over every row of the run that
  // skipped its middle ones cost tens of instructions a row: runs of thousands of rows of one element took 2.5 ms
  // where the read took 150 us, H200). A row's middle columns by border_row_middle, its border column k by lane k.
  // The partials are stored first: the border rows then have the registers of `sums`.
  const int32_t head_rows = max(0, min(end_row, a.rows.head) - first_row);
  const int32_t tail_from = max(first_row, max(a.rows.head, height - a.rows.tail));
  const int32_t border_rows = head_rows + max(0, end_row - tail_from);
  for (int32_t k = 0; k < border_rows; ++k) {
    const int32_t i = k < head_rows ? first_row + k : tail_from + (k - head_rows);
    const T* row = base + i * a.stride_h;
    const A own = lane < border_cols ? to_acc(row[own_col]) : A(0);
    const A middle = middle_col ? border_row_middle<T, kEvictFirst>(row, a.cols.head, width - a.cols.tail, lane) : A(0);
    A* row_cells = cells + segment_of<int64_t>(a.rows, i, a.height) * a.cols.segments;
    if (lane == 0 && middle_col) row_cells[a.cols.head] = middle;
    if (lane < border_cols) row_cells[partial_column_segment(1 + lane, a.cols, middle_col)] = own;
  }
}

// The positions [0, row_count * W) of rows first_row... of one channel (channel_base: its element (0, 0)) that fall
// to this lane, position_lanes apart (the channels walk, TapSumsArgs::channels_walk), kTapUnroll loads in flight. A
// lane's next position is position_lanes / W rows and position_lanes % W columns on, then at most one wrap into the
// next row: no division, the address stepped rather than made per load, the steps read from the launch's parameters
// (TapSumsArgs::position_step_*: registers for the loads).
template <typename T, bool kEvictFirst, int kSide, bool kRowByRow>
__device__ __forceinline__ void positions_walk(const T* channel_base, const TapSumsArgs& a, int32_t first_row,
                                               int32_t row_count, int position_lane,
                                               RunSums<acc_t<T>, kSide>& sums) {
  using A = acc_t<T>;
  // float64: half the loads, the same bytes in flight as float32's (eight spilled registers under the cap).
  constexpr int kLoads = sizeof(T) == 8 ? kTapUnroll / 2 : kTapUnroll;
  const int32_t width = static_cast<int32_t>(a.width), step = a.position_lanes;
  if constexpr (kRowByRow) {
    // Columns position_lane, position_lane + step, ... of each row (the host takes this walk for float32 at
    // position_lanes 1 only: in 16 bits it was 2.3-2.7x slower than the flat walk, tuning.h kChannelRowsMinColumns; but
    // with step and position_lane fixed at 1 and 0 here tap_grid_kernel<T, 2, kChannelRowsWalk> spilled 8 bytes on
    // sm_89), kLoads loads at a time: the address and column stepped by constants, no wrap into the next row (the flat
    // walk below spent a column's wrap and its address on each element: H200, r04 of the sweep [1, 64, 2048, 2048]
    // float32 channels-last at padding 1, 199 million instructions and 313 us where padding 0's reader took 246;
    // docs/limits.md §81). A row's border columns in the middle ones' trips: loaded apart, without a compare per middle
    // element, r04's read took 273 us against 283 so, but two more trips a row, r37's (45 columns) 754 against the flat
    // walk's 305.
    const int64_t column_step = step * a.stride_w;
#pragma unroll 1
    for (int32_t row = first_row; row < first_row + row_count; ++row) {
      const T* at = channel_base + row * a.stride_h + position_lane * a.stride_w;
#pragma unroll 1
      for (int32_t col = position_lane; col < width; col += step * kLoads) {
        load_trip_until<A, kLoads>(
            [&](int u) { return col + step * u >= width; },
            [&](int u) { return to_acc(load_once<kEvictFirst>(at + u * column_step)); },
            [&](int u, const A& value) { sums.add(col + step * u, value); });
        at += kLoads * column_step;
      }
    }
  } else {
    const uint32_t count = static_cast<uint32_t>(row_count) * static_cast<uint32_t>(width);
    const int32_t lead_rows = position_lane / width;
    int32_t col = position_lane - lead_rows * width;
    const T* at = channel_base + (first_row + lead_rows) * a.stride_h + col * a.stride_w;
    // A trip's values into `sums`, the first at column `col`, which it leaves at the next trip's first. (RunSums::add
    // by selects instead of branches, for borders of 1, let ptxas sink the trip's later loads below the first
    // values' selects, sm_90 SASS: not kept.)
    const auto add_trip = [&](uint32_t base, const A (&v)[kLoads]) {
#pragma unroll
      for (int u = 0; u < kLoads; ++u) {
        if (base + step * u < count) sums.add(col, v[u]);
        col += a.position_step_cols;
        if (col >= width) col -= width;
      }
    };
    if (a.position_wrap_offset == 0) {
      // Rows without a gap between them (no slice of W): each load's address a constant step from the trip's first,
      // no wrap. With the wrap a 2-byte load took some 14 instructions of address and column (sm_90 SASS).
#pragma unroll 1
      for (uint32_t base = position_lane; base < count; base += static_cast<uint32_t>(step) * kLoads) {
        A v[kLoads];
#pragma unroll
        for (int u = 0; u < kLoads; ++u) {
          v[u] = base + step * u < count ? to_acc(load_once<kEvictFirst>(at + u * a.position_step_offset)) : A(0);
        }
        at += kLoads * a.position_step_offset;
        add_trip(base, v);
      }
      return;
    }
#pragma unroll 1
    for (uint32_t base = position_lane; base < count; base += static_cast<uint32_t>(step) * kLoads) {
      A v[kLoads];
      int32_t load_col = col;
#pragma unroll
      for (int u = 0; u < kLoads; ++u) {
        v[u] = base + step * u < count ? to_acc(load_once<kEvictFirst>(at)) : A(0);
        at += a.position_step_offset;
        load_col += a.position_step_cols;
        if (load_col >= width) load_col -= width, at += a.position_wrap_offset;
      }
      add_trip(base, v);
    }
  }
}

// Run `unit` of the channels walk (batch / chunks / channel_slices, rows [first_row, end_row) of one slice): the
// middle rows' partials into `partials` and each border row's cells into `grid`, for each of the slice's channels.
// Position lanes' values are added by a tree over the position lanes (a fixed order), into position lane 0.
template <typename T, bool kEvictFirst, int kSide, bool kRowByRow>
__device__ __forceinline__ void channel_run(const TapSumsArgs& a, int64_t unit, int lane, acc_t<T>* warp_border_sums) {
  using A = acc_t<T>;
  const int64_t slice = unit % a.channel_slices, rest = unit / a.channel_slices;
  const int64_t b = rest / a.chunks;
  const int32_t chunk = static_cast<int32_t>(rest - b * a.chunks);
  const int channel_lane = lane % a.channel_lanes, position_lane = lane / a.channel_lanes;
  const int64_t c = slice * a.channel_lanes + channel_lane;
  const bool active = position_lane < a.position_lanes && c < a.channels;
  const T* channel_base = static_cast<const T*>(a.x) + b * a.stride_b + c * a.stride_c;  // [H, W], strided
  const int32_t height = static_cast<int32_t>(a.height);
  const int32_t first_row = chunk * static_cast<int32_t>(a.chunk_rows);
  const int32_t end_row = min(first_row + static_cast<int32_t>(a.chunk_rows), height);
  const int32_t middle_first = max(first_row, a.rows.head);
  const int32_t middle_end = min(end_row, height - a.rows.tail);
  const int border_cols = a.cols.head + a.cols.tail;
  const bool middle_col = a.width - a.cols.tail > a.cols.head;
  const bool writer = position_lane == 0 && c < a.channels;
  const int64_t plane = b * a.channels + c;
  // The sums of rows [row, row + count) of this lane's channel, added over the position lanes, to f(k, total) in
  // position lane 0 (every lane takes part in the shuffles).
  const auto walk_rows = [&](int32_t row, int32_t count, auto&& f) {
    RunSums<A, kSide> sums;
    sums.lane_sums = warp_border_sums + lane;
    sums.first_col = a.cols.head;
    sums.end_col = static_cast<int32_t>(a.width) - a.cols.tail;
    sums.width = static_cast<int32_t>(a.width);
    if constexpr (kSide == 0) {
      for (int k = 0; k < border_cols; ++k) sums.lane_sums[32 * k] = 0;
    }
    if (active) positions_walk<T, kEvictFirst, kSide, kRowByRow>(channel_base, a, row, count, position_lane, sums);
    for_each_partial(sums, a.cols, [&](int k, A value) {
      for (int apart = a.position_lanes / 2; apart > 0; apart /= 2) {
        value += __shfl_down_sync(0xffffffffu, value, apart * a.channel_lanes);
      }
      f(k, value);
    });
  };
  A* part = static_cast<A*>(a.partials) + (plane * a.chunks + chunk) * (1 + border_cols);  // [1 + border columns]
  if (middle_first >= middle_end && writer) {
    for (int k = 0; k <= border_cols; ++k) part[k] = A(0);  // no middle rows in this run
  }
  A* cells = static_cast<A*>(a.grid) + plane * a.rows.segments * a.cols.segments;  // [row segments, col segments]
  // The middle rows in one walk, each border row in one of its own: one call of the walk (two took registers that
  // float64's spilled).
  for (int32_t i = first_row; i < end_row;) {
    const bool middle = i >= middle_first && i < middle_end;
    const int32_t rows = middle ? middle_end - i : 1;
    A* row_cells = cells + segment_of<int64_t>(a.rows, i, a.height) * a.cols.segments;  // a border row's cells
    walk_rows(i, rows, [&](int k, A total) {
      if (!writer) return;
      if (middle) {
        part[k] = total;
      } else if (k > 0 || middle_col) {
        row_cells[partial_column_segment(k, a.cols, middle_col)] = total;
      }
    });
    i += rows;
  }
}

// tap_grid_kernel's border sums in dynamic shared memory: with border_side 0, a sum per lane and border column of
// each warp (a multiple of 16 bytes).
__host__ __device__ inline size_t tap_border_bytes(ScalarKind kind, int border_side, int border_cols) {
  if (border_side > 0) return 0;
  return static_cast<size_t>(kWarpsPerBlock) * 32 * border_cols * (kind == ScalarKind::kDouble ? 8 : 4);
}

// Blocks of kBlockThreads, at least kTapBlocksPerSm resident (registers capped to fit them): warps enough to keep
// the loads in flight. Dynamic shared memory: tap_grid_shared_bytes. A unit is a run of one plane's rows (tap_run: its
// middle rows by the span or the element walk, or kStagedWalk's staged walk, an instance of its own so the others keep
// their registers), or of a slice of channels' (kChannelsWalk, or row by row kChannelRowsWalk, an instance of its own:
// beside the flat walk, the kSide 2 instances spilled 4-32 bytes; channel_run; neighbouring warps take neighbouring
// slices of the same rows, which share lines of x).
enum TapWalk : int { kRowsWalk, kChannelsWalk, kStagedWalk, kChannelRowsWalk };
template <typename T, int kSide, int kWalk>
__global__ void __launch_bounds__(kBlockThreads, kTapBlocksPerSm)
    tap_grid_kernel(const __grid_constant__ TapSumsArgs a) {
  using A = acc_t<T>;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int border_cols = a.cols.head + a.cols.tail;
  A* warp_border_sums = reinterpret_cast<A*>(shared_bytes) + warp * border_cols * 32;
  // The rows walk's stages (TapSumsArgs::stage_rows), after every warp's border sums (a multiple of 16 bytes).
  T* warp_stage = reinterpret_cast<T*>(shared_bytes + tap_border_bytes(a.kind, a.border_side, border_cols) +
                                       static_cast<size_t>(warp) * a.stage_bytes);
  // Waits for the grid ahead (block 0 alone where beside_previous) and lets the combining launch start as the last of
  // these blocks do.
  start_beside_previous_grid(a.beside_previous);
  constexpr bool kChannels = kWalk == kChannelsWalk || kWalk == kChannelRowsWalk;
  const int64_t units = a.batch * (kChannels ? a.channel_slices : a.channels) * a.chunks;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  with_evict_first(a.evict_first, [&](auto evict_first) {
    for (int64_t unit = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp; unit < units; unit += warps) {
      if constexpr (kChannels) {
        channel_run<T, decltype(evict_first)::value, kSide, kWalk == kChannelRowsWalk>(a, unit, lane,
                                                                                      warp_border_sums);
      } else {
        tap_run<T, decltype(evict_first)::value, kSide, kWalk == kStagedWalk>(a, unit, lane, warp_border_sums,
                                                                             warp_stage);
      }
    }
  });
}

// f(std::integral_constant<int, W>) for the walk of tap_grid_kernel that args with `channels_walk` (flat) and a stage
// of `stage_bytes` take (TapSumsArgs::channels_walk, stage_bytes).
template <typename R, typename F> R with_walk(bool channels_walk, int32_t stage_bytes, F&& f) {
  if (channels_walk) return f(std::integral_constant<int, kChannelsWalk>{});
  if (stage_bytes > 0) return f(std::integral_constant<int, kStagedWalk>{});
  return f(std::integral_constant<int, kRowsWalk>{});
}

// f(std::integral_constant<int, S>) for S = side (0, 1 or 2), else `otherwise`.
template <typename R, typename F> R with_border_side(int side, R otherwise, F&& f) {
  switch (side) {
    case 0: return f(std::integral_constant<int, 0>{});
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    default: return otherwise;
  }
}

// f(kernel) for the tap_grid_kernel instance that args of `border_side`, `channels_walk`, `channel_rows` and
// `stage_bytes` take (TapSumsArgs), else `otherwise`: kVectorBorderSide has the rows walk's alone (whole-vector rows),
// for x of 2- and 4-byte elements; the channels walk row by row is float32's alone (plan::channel_walk_by_rows).
template <typename T, typename R, typename F>
R with_tap_grid_kernel(int border_side, bool channels_walk, bool channel_rows, int32_t stage_bytes, R otherwise,
                       F&& f) {
  if (channels_walk && channel_rows) {
    if constexpr (std::is_same_v<T, float>) {
      return with_border_side(border_side, otherwise, [&](auto side) {
        return f(tap_grid_kernel<T, decltype(side)::value, kChannelRowsWalk>);
      });
    }
    return otherwise;
  }
  if (border_side == kVectorBorderSide) {
    if constexpr (16 / sizeof(T) >= kVectorBorderSide) {
      if (!channels_walk && stage_bytes == 0) return f(tap_grid_kernel<T, kVectorBorderSide, kRowsWalk>);
    }
    return otherwise;
  }
  return with_border_side(border_side, otherwise, [&](auto side) {
    return with_walk<R>(channels_walk, stage_bytes, [&](auto walk) {
      return f(tap_grid_kernel<T, decltype(side)::value, decltype(walk)::value>);
    });
  });
}

// The combining kernels' kSide for the reader's border_side: kVectorBorderSide's partials as the shared-memory
// borders', in a loop (kSide 0).
constexpr int combine_side(int border_side) { return border_side == kVectorBorderSide ? 0 : border_side; }

// Adds a run's partial_count partials into `totals`, every load issued before the adds: `break` at the run's end,
// not a predicate per load kept until its add (ptxas then issues the loads one at a time: read_plane_lanes.cuh's
// lane_share). One run, not the loop over a plane's runs: that loop shared spilled tap_combine_kernel<double, false,
// 2> on sm_90 (docs/limits.md §64). Several runs' loads before their adds measured no faster forward (H200: r29 of the
// sweep 97.2 -> 96.5-97.0 us, r48 89.5 -> 88.5-89.6): the time after the reader lies elsewhere (docs/limits.md §81).
template <typename A, int kMaxPartials>
__device__ __forceinline__ void add_run(const A* run, int partial_count, A (&totals)[kMaxPartials]) {
  load_trip_until<A, kMaxPartials>([&](int k) { return k >= partial_count; }, [&](int k) { return run[k]; },
                                   [&](int k, A value) { totals[k] += value; });
}

// tap_combine_kernel's blocks per SM for borders of kSide columns a side (tuning.h kTapCombineBlocksPerSm; wider
// ones uncapped).
constexpr int tap_combine_blocks_per_sm(int side) { return side > 0 ? kTapCombineBlocksPerSm : 1; }

// tap_combine_kernel's dynamic shared memory a warp, in values of the accumulation type: the plane's cells, its taps,
// then where TapSumsArgs::weight_pitch > 0 its channel's weight, column n's taps at n * weight_pitch. (c_out / groups
// is TapSumsArgs::group_columns; read from that field, the float64 kSide-2 instances spilled 4 bytes on sm_90.)
__host__ __device__ inline int64_t combine_warp_values(const TapSumsArgs& a) {
  return a.rows.segments * a.cols.segments + a.rows.taps * a.cols.taps +
         (a.weight_pitch > 0 ? a.c_out / a.groups * a.weight_pitch : 0);
}

// The weight of channel c ([c_out / groups, taps] contiguous, in `kind`) into `stage` (column n's taps at n *
// weight_pitch) by the warp's lanes, kStageLoads loads in flight a lane.
template <typename T>
__device__ __forceinline__ void stage_channel_weight(const TapSumsArgs& a, int64_t c, int lane, acc_t<T>* stage) {
  constexpr int kStageLoads = 8;
  const int taps = a.rows.taps * a.cols.taps;
  const int values = static_cast<int>(a.group_columns) * taps;  // a stage's worth: within shared memory
  const T* weight = static_cast<const T*>(a.weight) + c * values;
#pragma unroll 1
  for (int i0 = lane; i0 < values; i0 += 32 * kStageLoads) {
    load_trip_until<T, kStageLoads>(
        [&](int u) { return i0 + 32 * u >= values; }, [&](int u) { return __ldg(weight + i0 + 32 * u); },
        [&](int u, T value) {
          const int i = i0 + 32 * u;
          const int column = i / taps;
          stage[column * a.weight_pitch + (i - column * taps)] = to_acc(value);
        });
  }
}

// The cells tap `tap` keeps: rows x cols of them from cell `first` of the plane's grid ([row, column segments]).
struct TapCells {
  int32_t first, rows, cols;
};
__device__ __forceinline__ TapCells tap_cells(const TapSumsArgs& a, int tap) {
  const int t = tap / a.cols.taps, u = tap - t * a.cols.taps;
  return {a.rows.first[t] * a.cols.segments + a.cols.first[u], a.rows.end[t] - a.rows.first[t],
          a.cols.end[u] - a.cols.first[u]};
}

// A plane's channel, and the columns of the output its group's weight covers: [group_first, group_first +
// group_columns). By multiply-and-shift divisions (TapSumsArgs::channel_divisor, group_divisor) where the planes
// allow: the three divisions took 0.5 us of the headline's padded tail after the wait (docs/limits.md §78).
struct ChannelColumns {
  int64_t channel, group_first, group_columns;
};
__device__ __forceinline__ ChannelColumns channel_columns(const TapSumsArgs& a, int64_t plane) {
  const int64_t planes = a.batch * a.channels, group_columns = a.group_columns;
  if (planes < (int64_t{1} << 31)) {
    const uint32_t batch_row = divide(static_cast<uint32_t>(plane), a.channel_divisor);
    const uint32_t channel = static_cast<uint32_t>(plane) - batch_row * static_cast<uint32_t>(a.channels);
    return {channel, divide(channel, a.group_divisor) * group_columns, group_columns};
  }
  const int64_t channel = plane % a.channels;
  return {channel, channel / (a.channels / a.groups) * group_columns, group_columns};
}

// A warp per plane: its cells staged in shared memory (the border rows' from the reader's grid, the middle row's the
// runs' partials added, lanes across runs, then a butterfly: a fixed order), then each tap's sum of the cells it
// keeps, lanes across taps; then, where asked, the plane's share of the cropped GEMM, lanes across columns, the taps
// in order (from shared memory: every lane needs every tap). Each step issues its loads before its adds: the
// combine's time is its round trips to L2 (H200 headline padding 1: 17.6 us with a trip per border column, per
// cell a tap keeps and per 32 columns of shares; padding 3, 40.9). The weight of a warp's first plane's channel is
// staged in shared memory before the wait for the reader (TapSumsArgs::weight_pitch; the caller's, ready before the
// reader started), whose last blocks it overlaps: the shares' loads after the wait took 4.1 us of the headline's
// padding 1, the cells' 3.6, a launch with nothing after its wait 0.6 (docs/limits.md §77). kTapSums false
// (TapSumsArgs::sums null): the taps are staged for the shares but not stored (an instance, not a run-time test:
// either way the float64 kernel without the store spills 16 bytes on sm_90, and the run-time test made the one with
// it spill too). kSide as tap_grid_kernel's (combine_side): a run's partials are at most 1 + 2 * kSide (registers
// for them), and the blocks per SM tap_combine_blocks_per_sm says. Dynamic shared memory: combine_warp_values a warp.
template <typename T, bool kTapSums, int kSide, bool kStagedWeight>
__global__ void __launch_bounds__(kBlockThreads, tap_combine_blocks_per_sm(kSide))
    tap_combine_kernel(const __grid_constant__ TapSumsArgs a) {
  using A = acc_t<T>;
  constexpr int kMaxPartials = 1 + 2 * (kSide > 0 ? kSide : kMaxTapCut);
  constexpr int kShareColumns = tap_share_columns(sizeof(A)), kShareTaps = kTapShareTaps;
  // A column's first weight in the stage (within shared memory), or in the weight (registers: int64 spilled there).
  using Offset = std::conditional_t<kStagedWeight, int32_t, int64_t>;
  extern __shared__ __align__(16) unsigned char combine_shared[];
  const A* partials = static_cast<const A*>(a.partials);  // [B*C, chunks, 1 + border columns]
  A* grid = static_cast<A*>(a.grid);                      // [B*C, row segments, column segments]
  A* sums = static_cast<A*>(a.sums);                      // [B*C, kH, kW], or null: the shares or cells alone
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t planes = a.batch * a.channels;
  const int taps = a.rows.taps * a.cols.taps, cells = a.rows.segments * a.cols.segments;
  A* plane_cells = reinterpret_cast<A*>(combine_shared) + warp * combine_warp_values(a);  // [row, column segments]
  A* plane_taps = plane_cells + cells;                                                    // [taps]
  A* weight_stage = plane_taps + taps;  // [c_out / groups, weight_pitch], where weight_pitch > 0
  const int64_t first_plane = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp;
  // Before the wait only where the reader's every block waited for the grid ahead of it before letting this grid
  // start (not beside_previous): then whatever made the weight has ended.
  const bool staged_early = kStagedWeight && !a.beside_previous;
  if (staged_early && first_plane < planes) {
    stage_channel_weight<T>(a, channel_columns(a, first_plane).channel, lane, weight_stage);
  }
  // After the wait a warp's steps run one after another, each at its instructions' latency (the headline's padding
  // 1: its cells 2.1 us after the wait, its taps 1.1 more, its shares 2.5 more, the plane's divisions 0.5 of that;
  // docs/limits.md §78), so they are kept few: divisions by multiply and shift, no select per weight.
  const int partial_count = 1 + a.cols.head + a.cols.tail;
  const bool middle_row = a.height - a.rows.tail > a.rows.head, middle_col = a.width - a.cols.tail > a.cols.head;
  wait_for_previous_grid();
  for (int64_t plane = first_plane; plane < planes; plane += static_cast<int64_t>(gridDim.x) * kWarpsPerBlock) {
    if (kStagedWeight && (plane != first_plane || !staged_early)) {
      stage_channel_weight<T>(a, channel_columns(a, plane).channel, lane, weight_stage);
    }
    // The border rows' cells (the reader's grid) and the runs' partials in one trip: a lane's first cell (and with
    // borders in shared memory, kSide 0, its second: 49 cells at padding 3) is held in a register until the
    // partials' loads are out (stored at once, it waited for its load before them; the second's register saved no
    // time measurable at the headline's padding 3, docs/limits.md §78).
    const auto border_row_cell = [&](int cell) {
      return cell < cells && (!middle_row || cell / a.cols.segments != a.rows.head);
    };
    constexpr int kHeldCells = kSide == 0 ? 2 : 1;
    A held[kHeldCells];
#pragma unroll
    for (int i = 0; i < kHeldCells; ++i) {
      held[i] = border_row_cell(lane + 32 * i) ? grid[plane * cells + lane + 32 * i] : A(0);
    }
    for (int cell = lane + 32 * kHeldCells; cell < cells; cell += 32) {
      if (border_row_cell(cell)) plane_cells[cell] = grid[plane * cells + cell];
    }
    const auto store_held = [&] {
#pragma unroll
      for (int i = 0; i < kHeldCells; ++i) {
        if (border_row_cell(lane + 32 * i)) plane_cells[lane + 32 * i] = held[i];
      }
    };
    if (middle_row) {
      A totals[kMaxPartials] = {};
      for (int64_t chunk = lane; chunk < a.chunks; chunk += 32) {
        const A* run = partials + (plane * a.chunks + chunk) * partial_count;
        add_run(run, partial_count, totals);
      }
      store_held();
      A* middle_cells = plane_cells + a.rows.head * a.cols.segments;
#pragma unroll
      for (int k = 0; k < kMaxPartials; ++k) {
        if (k >= partial_count) break;
        const A total = warp_sum(totals[k]);
        // Partial 0 is the middle columns' (none without a middle column), then each border column's.
        const int cell = partial_column_segment(k, a.cols, middle_col);
        if (lane == 0 && (k > 0 || middle_col)) {
          middle_cells[cell] = total;
          if (a.complete_grid) grid[plane * cells + a.rows.head * a.cols.segments + cell] = total;
        }
      }
    }
    if (!middle_row) store_held();
    __syncwarp();  // cells (and the staged weight) written by other lanes are read by every lane
    for (int tap = lane; tap < taps; tap += 32) {
      const TapCells kept = tap_cells(a, tap);
      A total = 0;
      for (int r = 0; r < kept.rows; ++r) {
        const A* row = plane_cells + kept.first + r * a.cols.segments;
        for (int q = 0; q < kept.cols; ++q) total += row[q];
      }
      if constexpr (kTapSums) sums[plane * taps + tap] = total;
      plane_taps[tap] = total;
    }
    __syncwarp();
    if (a.shares != nullptr) {
      // The weight read where it lies (a lane's taps side by side; the warp's columns share L1 lines) rather than
      // copied into rows first: that copy was a launch ahead of the reader, 2 us of the headline's forward (H200);
      // or from its stage.
      const ChannelColumns columns = channel_columns(a, plane);
      const T* weight = static_cast<const T*>(a.weight) + columns.channel * columns.group_columns * taps;
      const Offset weight_pitch = kStagedWeight ? a.weight_pitch : taps;  // [c_out / groups, taps] either way
      A* share = static_cast<A*>(a.shares) + plane * a.c_out;  // [c_out]
      for (int64_t n0 = lane; n0 < a.c_out; n0 += 32 * kShareColumns) {
        // A column outside c's group reads column 0 and stores 0 (a select at the store: a product with an
        // infinite tap would make the sum NaN), the taps stop at their end by `break`: every load issued before
        // the adds.
        const int64_t column0 = n0 - columns.group_first;  // column j: column0 + 32 j in c's group's weight
        unsigned in_group = 0;  // bit j: column j is one of c's group's (a mask: one register through the adds)
#pragma unroll
        for (int j = 0; j < kShareColumns; ++j) {
          if (column0 + 32 * j >= 0 && column0 + 32 * j < columns.group_columns) in_group |= 1u << j;
        }
        A total[kShareColumns] = {};
        for (int t0 = 0; t0 < taps; t0 += kShareTaps) {
          A w[kShareColumns][kShareTaps];
#pragma unroll
          for (int j = 0; j < kShareColumns; ++j) {
            const Offset column_first = static_cast<Offset>(in_group >> j & 1 ? column0 + 32 * j : 0) * weight_pitch;
#pragma unroll
            for (int u = 0; u < kShareTaps; ++u) {
              if (t0 + u >= taps) break;
              w[j][u] = kStagedWeight ? weight_stage[column_first + t0 + u]
                                      : to_acc(__ldg(weight + column_first + t0 + u));
            }
          }
#pragma unroll
          for (int j = 0; j < kShareColumns; ++j) {
#pragma unroll
            for (int u = 0; u < kShareTaps; ++u) {
              if (t0 + u >= taps) break;
              total[j] += plane_taps[t0 + u] * w[j][u];
            }
          }
        }
#pragma unroll
        for (int j = 0; j < kShareColumns; ++j) {
          if (n0 + 32 * j < a.c_out) share[n0 + 32 * j] = in_group >> j & 1 ? total[j] : A(0);
        }
      }
    }
    __syncwarp();  // the staged cells, taps and weight are the next plane's
  }
}

// The combine where the cells are all the forward reads (TapSumsArgs::sums and shares null, complete_grid): only the
// middle row's cells, each the sum of the plane's runs' partials as tap_combine_kernel adds them (lane l of the plane
// the runs l, l + 32, ..., then the same tree over the lanes), by a group of middle_lanes lanes per plane, the fewest
// (a power of two) that cover the runs: a lane past the runs adds nothing, so the tree over fewer lanes gives the
// same sums (a -0 may come out +0). The border rows' cells are the reader's already. tap_combine_kernel's warp per
// plane left 31 lanes idle where a plane is one run, and staged every cell and tap, which a forward over cells does
// not read. kSide as tap_grid_kernel's (combine_side; registers for a run's partials).
template <typename A, int kSide>
__global__ void __launch_bounds__(kBlockThreads) tap_middle_cells_kernel(const __grid_constant__ TapSumsArgs a) {
  constexpr int kMaxPartials = 1 + 2 * (kSide > 0 ? kSide : kMaxTapCut);
  const A* partials = static_cast<const A*>(a.partials);  // [B*C, chunks, 1 + border columns]
  A* grid = static_cast<A*>(a.grid);                      // [B*C, row segments, column segments]
  wait_for_previous_grid();
  const int lane = threadIdx.x & 31, group_lanes = a.middle_lanes, group_lane = lane % group_lanes;
  const int partial_count = 1 + a.cols.head + a.cols.tail;
  const bool middle_col = a.width - a.cols.tail > a.cols.head;
  const int64_t planes = a.batch * a.channels;
  const int64_t warp_planes = 32 / group_lanes;
  A* middle_cells = grid + a.rows.head * a.cols.segments;  // plane 0's, planes rows.segments * cols.segments apart
  // Warps step together (the shuffles take the whole warp); a group past the last plane loads nothing.
  for (int64_t first = (static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5)) * warp_planes;
       first < planes; first += static_cast<int64_t>(gridDim.x) * kWarpsPerBlock * warp_planes) {
    const int64_t plane = first + lane / group_lanes;
    const bool real = plane < planes;
    A totals[kMaxPartials] = {};
    for (int64_t chunk = group_lane; chunk < a.chunks; chunk += group_lanes) {
      if (!real) break;
      const A* run = partials + (plane * a.chunks + chunk) * partial_count;
      add_run(run, partial_count, totals);
    }
#pragma unroll
    for (int k = 0; k < kMaxPartials; ++k) {
      if (k >= partial_count) break;
      A total = totals[k];
      for (int offset = group_lanes / 2; offset > 0; offset >>= 1) {
        total += __shfl_xor_sync(0xffffffffu, total, offset);
      }
      if (real && group_lane == 0 && (k > 0 || middle_col)) {
        middle_cells[plane * a.rows.segments * a.cols.segments + partial_column_segment(k, a.cols, middle_col)] = total;
      }
    }
  }
}

// The adjoint's first step: each segment pair's value, the sum of the taps that keep it (taps in order), cell-major
// (TapBroadcastArgs).
template <typename A>
__global__ void __launch_bounds__(kBlockThreads) tap_spread_kernel(const __grid_constant__ TapBroadcastArgs a) {
  const A* taps = static_cast<const A*>(a.taps);  // [B*C, rows.taps, cols.taps]
  A* cells = static_cast<A*>(a.cells);            // [rows.segments * cols.segments, B*C]
  const int64_t planes = a.batch * a.channels;
  const int64_t total = planes * a.rows.segments * a.cols.segments;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * kBlockThreads + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * kBlockThreads) {
    const int64_t cell = e / planes, plane = e - cell * planes;
    const int r = static_cast<int>(cell / a.cols.segments), q = static_cast<int>(cell - r * a.cols.segments);
    const A* plane_taps = taps + plane * a.rows.taps * a.cols.taps;
    A value = 0;
    for (int t = 0; t < a.rows.taps; ++t) {
      if (r < a.rows.first[t] || r >= a.rows.end[t]) continue;
      for (int u = 0; u < a.cols.taps; ++u) {
        if (q >= a.cols.first[u] && q < a.cols.end[u]) value += plane_taps[t * a.cols.taps + u];
      }
    }
    cells[e] = value;
  }
}

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

// A thread per plane of at most kSmallPlaneElements elements (SmallPlaneTapArgs), its cells in shared memory (a
// column per thread: neighbouring threads' cells in neighbouring banks), then its taps beside them. Neighbouring
// threads read neighbouring planes: with C the contiguous dimension (channels_last) each load is one line across
// the warp; with whole planes contiguous, by 16-byte vectors, the warp's first loads bring in the lines its later
// ones find in L1. The block's planes' cells and taps leave by the block's threads together, consecutive threads on
// consecutive values (a thread's own taps, stored by it, were 9 stores 36 bytes apart: H200, x [1000000, 4, 1, 1]
// float32, 325 us for 176 MB). kTapSums false (SmallPlaneTapArgs::sums null): the taps are added in shared memory
// but not stored, the cells alone leave (a run-time test, or skipping the adds, made float64 or float16 spill on
// sm_90).
template <typename T, bool kTapSums>
__global__ void __launch_bounds__(kSmallPlaneMaxThreads)
    small_plane_taps_kernel(const __grid_constant__ SmallPlaneTapArgs a) {
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
        const uint4* vectors = reinterpret_cast<const uint4*>(base);
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
__global__ void __launch_bounds__(kSmallPlaneMaxThreads)
    staged_plane_taps_kernel(const __grid_constant__ SmallPlaneTapArgs a) {
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

// A thread per output value (CellWeightArgs), consecutive threads on consecutive columns n: the writes whole lines,
// the reads a kernel's taps apart, each cell loading its taps again (CellWeightArgs::by_pairs false: kernels of more
// than kCellWeightRegisterTaps taps, and pairs too few to fill the device).
template <typename T>
__global__ void __launch_bounds__(kBlockThreads) cell_weight_values_kernel(const __grid_constant__ CellWeightArgs a) {
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
__global__ void __launch_bounds__(kBlockThreads) cell_weight_pairs_kernel(const __grid_constant__ CellWeightArgs a) {
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

// f(kernel) for tap_combine_kernel<T, tap_sums, kSide, staged_weight>; float64 has no staged instance (its stage
// spilled 20-108 bytes on sm_90 under the cap; TapSumsArgs::weight_pitch is 0 for it).
template <typename T, int kSide, typename F> auto with_tap_combine_kernel(bool tap_sums, bool staged_weight, F&& f) {
  if constexpr (sizeof(T) < 8) {
    if (staged_weight) {
      return tap_sums ? f(tap_combine_kernel<T, true, kSide, true>) : f(tap_combine_kernel<T, false, kSide, true>);
    }
  }
  return tap_sums ? f(tap_combine_kernel<T, true, kSide, false>) : f(tap_combine_kernel<T, false, kSide, false>);
}

template <typename T>
cudaError_t launch_tap_sums_typed(const TapSumsArgs& a, cudaStream_t stream) {
  const size_t shared_bytes = tap_grid_shared_bytes(a.kind, a.border_side, a.cols.head + a.cols.tail, a.stage_bytes);
  // Launched after the previous grid (launch.cuh): the combining launch's start overlaps the reader's last blocks.
  const cudaError_t read = with_tap_grid_kernel<T>(
      a.border_side, a.channels_walk, a.channel_rows, a.stage_bytes, cudaErrorInvalidValue, [&](auto kernel) {
        return launch_after_previous_with_shared(kernel, static_cast<unsigned>(a.read_blocks), kBlockThreads,
                                                 shared_bytes, stream, a);
      });
  if (read != cudaSuccess || a.combine_blocks == 0) return read;
  return with_border_side(combine_side(a.border_side), cudaErrorInvalidValue, [&](auto side) {
    constexpr int kSide = decltype(side)::value;
    if (a.middle_lanes > 0) {
      return launch_after_previous(tap_middle_cells_kernel<acc_t<T>, kSide>, static_cast<unsigned>(a.combine_blocks),
                                   kBlockThreads, stream, a);
    }
    return with_tap_combine_kernel<T, kSide>(a.sums != nullptr, a.weight_pitch > 0, [&](auto combine) {
      return launch_after_previous_with_shared(combine, static_cast<unsigned>(a.combine_blocks), kBlockThreads,
                                               tap_combine_shared_bytes(a), stream, a);
    });
  });
}

}  // namespace

cudaError_t launch_tap_sums(const TapSumsArgs& args, cudaStream_t stream) {
  return with_element_type(args.kind, cudaErrorInvalidValue,
                           [&](auto t) { return launch_tap_sums_typed<decltype(t)>(args, stream); });
}

cudaError_t launch_tap_spread(const TapBroadcastArgs& args, cudaStream_t stream) {
  return with_element_type(args.kind, cudaErrorInvalidValue, [&](auto t) {
    using A = acc_t<decltype(t)>;
    tap_spread_kernel<A><<<static_cast<unsigned>(args.blocks), kBlockThreads, 0, stream>>>(args);
    return cudaGetLastError();
  });
}

cudaError_t launch_small_plane_taps(const SmallPlaneTapArgs& args, cudaStream_t stream) {
  return with_element_type(args.kind, cudaErrorInvalidValue, [&](auto t) {
    using T = decltype(t);
    if (args.staged_planes > 0) {
      const auto kernel =
          args.sums != nullptr ? staged_plane_taps_kernel<T, true> : staged_plane_taps_kernel<T, false>;
      const size_t shared = staged_plane_shared_bytes(
          static_cast<size_t>(args.staged_planes), static_cast<size_t>(args.height * args.width),
          static_cast<size_t>(args.plane_pitch),
          static_cast<size_t>(args.row_segments * args.column_segments + args.taps_h * args.taps_w), sizeof(acc_t<T>));
      kernel<<<static_cast<unsigned>(args.blocks), args.threads, shared, stream>>>(args);
      return cudaGetLastError();
    }
    const size_t shared = static_cast<size_t>(args.row_segments * args.column_segments + args.taps_h * args.taps_w) *
                          sizeof(acc_t<T>) * static_cast<size_t>(args.pitch);
    const auto kernel = args.sums != nullptr ? small_plane_taps_kernel<T, true> : small_plane_taps_kernel<T, false>;
    kernel<<<static_cast<unsigned>(args.blocks), args.threads, shared, stream>>>(args);
    return cudaGetLastError();
  });
}

cudaError_t launch_cell_weight(const CellWeightArgs& args, cudaStream_t stream) {
  return with_element_type(args.kind, cudaErrorInvalidValue, [&](auto t) {
    using T = decltype(t);
    // Launched after the previous grid (launch.cuh): a reader of x may then start beside it (forward_split's W.sum
    // for groups; forward_cropped_cuda's tap reader).
    const int64_t taps = args.kernel_h * args.kernel_w;
    if (args.by_pairs && taps > kCellWeightRegisterTaps) return cudaErrorInvalidValue;
    const auto kernel = !args.by_pairs ? cell_weight_values_kernel<T>
                        : taps <= 16   ? cell_weight_pairs_kernel<T, 16>
                                       : cell_weight_pairs_kernel<T, kCellWeightRegisterTaps>;
    return launch_after_previous(kernel, static_cast<unsigned>(args.blocks), kBlockThreads, stream, args);
  });
}

size_t tap_grid_shared_bytes(ScalarKind kind, int border_side, int border_cols, int32_t stage_bytes) {
  return tap_border_bytes(kind, border_side, border_cols) + static_cast<size_t>(kWarpsPerBlock) * stage_bytes;
}

int tap_sums_blocks_per_sm(ScalarKind kind, int border_side, int border_cols, bool channels_walk, bool channel_rows,
                           int32_t stage_bytes) {
  return with_element_type(kind, 1, [&](auto t) {
    using T = decltype(t);
    return with_tap_grid_kernel<T>(border_side, channels_walk, channel_rows, stage_bytes, 1, [&](auto kernel) {
      return resident_blocks_per_sm(kernel, kBlockThreads,
                                    tap_grid_shared_bytes(kind, border_side, border_cols, stage_bytes));
    });
  });
}

size_t tap_combine_shared_bytes(const TapSumsArgs& a) {
  return static_cast<size_t>(kWarpsPerBlock * combine_warp_values(a)) * (a.kind == ScalarKind::kDouble ? 8 : 4);
}

int tap_combine_resident_per_sm(ScalarKind kind, int border_side, bool tap_sums, bool staged_weight,
                                size_t shared_bytes) {
  return with_element_type(kind, 1, [&](auto t) {
    using T = decltype(t);
    return with_border_side(combine_side(border_side), 1, [&](auto side) {
      return with_tap_combine_kernel<T, decltype(side)::value>(tap_sums, staged_weight, [&](auto combine) {
        return resident_blocks_per_sm(combine, kBlockThreads, shared_bytes);
      });
    });
  });
}

}  // namespace fusedlse
