// Padding's tap reader over planes whose rows are contiguous (TapSumsArgs; tap_grid_kernel's rows and staged walks in
// ../taps.cu): a warp a run of one plane's rows, its middle rows' partials by the span, staged or element walk, its
// border rows' cells by the warp.
#pragma once

#include "cut.cuh"
#include "tap_run_sums.cuh"

namespace fusedlse {
namespace {

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

// The middle rows [first_row, first_row + row_count) of a plane whose rows follow each other with no gap (stride_h ==
// W > cols.head + cols.tail: TapSumsArgs::middle_by_span), summed whole as padding 0's reader sums a plane: 16-byte
// loads over their span, kTapVectorLoads in flight a lane, no vector's columns looked at. Each row's border columns
// are loaded apart, a lane a row, in the trip whose loads reach that row (their lines in flight or just in), into
// their own sums and off the middle's. The span walk sent every vector that holds a border column through
// RunSums::add element by element, and a warp met one on nearly every trip. The middle's sum is then a difference,
// which an infinity would make a NaN where the model keeps it apart: a warp that meets a value that is not finite (or a
// sum that overflows) returns false and leaves `sums` as it found them (zero), and the caller reads the run again by
// a walk that only adds.
template <typename T, bool kEvictFirst, int kSide>
__device__ __forceinline__ bool middle_by_span(const T* plane_base, const TapSumsArgs& a, int32_t first_row,
                                               int32_t row_count, int lane, RunSums<acc_t<T>, kSide>& sums) {
  // Borders in registers alone (plan::tap_middle_by_span): in shared memory, with the vectors added before the border
  // columns' loads so as not to spill, borders of 3 took 1.04-1.06x the stage's time (r44, r51, r60; H100, §99).
  static_assert(kSide == 1 || kSide == 2, "middle_by_span keeps its border columns' sums in registers");
  using A = acc_t<T>;
  constexpr int kVec = 16 / sizeof(T);
  constexpr int kLoads = kTapVectorLoads;
  const int32_t width = static_cast<int32_t>(a.width);
  const T* rows = plane_base + first_row * a.stride_h;
  const uint32_t span = static_cast<uint32_t>(row_count) * static_cast<uint32_t>(width);
  const uint32_t lead =
      min(span, static_cast<uint32_t>((16 - reinterpret_cast<uintptr_t>(rows) % 16) % 16 / sizeof(T)));
  const uint32_t vectors = (span - lead) / kVec;
  const uint4* aligned = reinterpret_cast<const uint4*>(rows + lead);
  // Trip t's loads reach about rows [t * trip_rows, (t + 1) * trip_rows): those rows' border columns go with it.
  const uint32_t trips = max(1u, (vectors + 32 * kLoads - 1) / (32 * kLoads));
  const int32_t trip_rows = static_cast<int32_t>((static_cast<uint32_t>(row_count) + trips - 1) / trips);
  A total = 0, edges = 0;
  // The elements outside whole vectors, fewer than kVec before the first and after the last, a lane each.
  const uint32_t trail = lead + vectors * kVec;
  if (static_cast<uint32_t>(lane) < lead) total += to_acc(__ldg(rows + lane));
  if (trail + lane < span) total += to_acc(__ldg(rows + trail + lane));
#pragma unroll 1
  for (uint32_t t = 0; t < trips; ++t) {
    uint4 v[kLoads];
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      const uint32_t e = t * 32 * kLoads + 32 * u + lane;
      v[u] = e < vectors ? load_once<kEvictFirst>(aligned + e) : make_uint4(0, 0, 0, 0);
    }
    const int32_t end_row = min(row_count, static_cast<int32_t>(t + 1) * trip_rows);
#pragma unroll 1
    for (int32_t r = static_cast<int32_t>(t) * trip_rows + lane; r < end_row; r += 32) {
      const T* row = rows + static_cast<int64_t>(r) * width;
      // head[k] holds column k, tail[k] column W - kSide + k (RunSums).
#pragma unroll
      for (int k = 0; k < kSide; ++k) {
        if (k < a.cols.head) {
          const A value = to_acc(__ldg(row + k));
          sums.head[k] += value;
          edges += value;
        }
        if (k >= kSide - a.cols.tail) {
          const A value = to_acc(__ldg(row + width - kSide + k));
          sums.tail[k] += value;
          edges += value;
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kLoads; ++u) total += vec_sum<T>(v[u]);
  }
  const A middle = total - edges;
  if (__all_sync(0xffffffffu, isfinite(total) && isfinite(edges) && isfinite(middle))) {
    sums.middle += middle;
    return true;
  }
#pragma unroll
  for (int k = 0; k < kSide; ++k) sums.head[k] = sums.tail[k] = A(0);
  return false;
}

// Border rows k0 .. k0 + kRows - 1 of a piece in the warp's stage (`piece_stage`: the piece's first row; fewer where
// border.count ends first, the last one's loads repeated in the slots past it), into the plane's `cells`: lanes take
// the columns 32 apart, every row's element of a column at once; a middle column's into its row's sum, a border
// column's stored as its cell where it lies; then the rows' sums over the warp at once (warp_sums), row r's by lane r.
// kSpanSums with `take_off`: each element this lane loads is also taken off its `span_sum` (staged_walk's sum of the
// span). A row at a time (its middle by the warp in trips of loads, a warp_sum, a store by lane 0, border column k's by
// lane k) took 82 warp instructions a border row, a third of the reader's on r16 of the sweep at padding 3 (H100 SASS
// counts, docs/limits.md §119); so, r16's forward at padding 1 / 2 / 3 0.977 / 0.936 / 0.948 of that, r10's 0.956-0.977
// (H100, §121).
template <typename T, int kRows, bool kSpanSums>
__device__ __forceinline__ void staged_border_rows(const TapSumsArgs& a, const T* piece_stage, int32_t piece,
                                                   const BorderRows& border, int32_t k0, int lane, acc_t<T>* cells,
                                                   bool take_off, acc_t<T>& span_sum) {
  using A = acc_t<T>;
  const int32_t width = static_cast<int32_t>(a.width), stride = static_cast<int32_t>(a.stride_h);
  const int32_t height = static_cast<int32_t>(a.height), middle_end = width - a.cols.tail;
  const bool middle_col = middle_end > a.cols.head;
  const T* row[kRows];
  A middle[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    row[r] = piece_stage + (border.row(min(k0 + r, border.count - 1)) - piece) * stride;
    middle[r] = A(0);
  }
#pragma unroll 1
  for (int32_t col = lane; col < width; col += 32) {
    T v[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) v[r] = row[r][col];
    if (kSpanSums && take_off) {
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        if (k0 + r < border.count) span_sum -= to_acc(v[r]);
      }
    }
    if (col >= a.cols.head && col < middle_end) {
#pragma unroll
      for (int r = 0; r < kRows; ++r) middle[r] += to_acc(v[r]);
    } else {
      // Border column k: the first cols.head, then the last cols.tail (border_column's numbering).
      const int32_t k = col < a.cols.head ? col : a.cols.head + (col - middle_end);
      const int32_t segment = partial_column_segment(1 + k, a.cols, middle_col);
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        if (k0 + r >= border.count) break;
        cells[segment_of<int32_t>(a.rows, border.row(k0 + r), height) * a.cols.segments + segment] = to_acc(v[r]);
      }
    }
  }
  const A total = warp_sums(middle, lane);
  if (middle_col && lane < kRows && k0 + lane < border.count) {
    cells[segment_of<int32_t>(a.rows, border.row(k0 + lane), height) * a.cols.segments + a.cols.head] = total;
  }
}

// A run's rows [first_row, end_row) of a plane through the warp's stage in shared memory (TapSumsArgs::stage_rows; rows
// that are not whole 16-byte vectors): pieces of stage_rows rows, each loaded as the span walk loads it (16-byte loads
// of the memory it spans, gaps and all, kTapVectorLoads in flight a lane, the few elements outside whole vectors a lane
// each) and stored as it lies. Then from the stage: each lane adds its column of the piece's middle rows, 32 columns
// apart (rows under 16 elements: 32 / W rows at once, a column a lane), and its column's sum into RunSums once a piece;
// and each of the piece's border rows (those before rows.head, then those from H - rows.tail on, as tap_run counts
// them) gets its cells, several rows at a time (staged_border_rows). kSpanSums (TapSumsArgs::middle_by_span with a
// stage, rows that follow each other with no gap, an instance of its own): the middle rows' middle columns are not
// walked: each lane sums the vectors it stages (vec_sum, as padding 0's reader sums a plane), and takes off it the
// border rows' elements and the middle rows' border columns it loads from the stage; a piece whose difference is not
// finite in some lane (an infinity or a NaN anywhere in it, or an overflow) takes the column walk instead. Beside the
// other staged walks, as a run-time flag, that took their forwards to 1.01-1.05x (r41, r57, r10, H100, docs/limits.md
// §123). The span walk sends every vector that straddles a row's end or a border column through RunSums::add element by
// element, a compare chain each, and a warp pays that path on nearly every trip: here an element is a shared load and
// an add whatever W. The border rows come with the middle ones' loads, not a round trip to memory each after them
// (tap_run's path for the other walks).
template <typename T, bool kEvictFirst, int kSide, bool kSpanSums>
__device__ __forceinline__ void staged_walk(const T* plane_base, const TapSumsArgs& a, int32_t first_row,
                                            int32_t end_row, int lane, T* stage, RunSums<acc_t<T>, kSide>& sums,
                                            acc_t<T>* cells) {
  using A = acc_t<T>;
  constexpr int kVec = 16 / sizeof(T);
  constexpr int kLoads = kTapVectorLoads;
  uint4* stage_vectors = reinterpret_cast<uint4*>(stage);
  const int32_t height = static_cast<int32_t>(a.height);
  A span_sum = 0;  // kSpanSums: this lane's share of a piece's span, then less the rest
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
        if (base + 32 * u < end_vector) {
          stage_vectors[base + 32 * u] = v[u];
          if constexpr (kSpanSums) span_sum += vec_sum<T>(v[u]);
        }
      }
    }
    // The elements outside whole vectors: after `lead` in the first granule, and from the last whole vector's end.
    const uint32_t at = lane < kVec ? lead + lane : max(first_vector, end_vector) * kVec + (lane - kVec);
    if ((lane < kVec && at < min(first_vector * kVec, stage_end)) ||
        (lane >= kVec && lane < 2 * kVec && at < stage_end)) {
      const T value = start[at - lead];
      stage[at] = value;
      if constexpr (kSpanSums) span_sum += to_acc(value);
    }
    __syncwarp();
    const int32_t width = static_cast<int32_t>(a.width), stride = static_cast<int32_t>(a.stride_h);
    const int32_t piece_end = piece + rows;
    // The piece's middle rows [middle_first, middle_end).
    const int32_t middle_first = max(piece, a.rows.head), middle_end = min(piece_end, height - a.rows.tail);
    // The middle rows' middle columns as the span's sum less the rest (kSpanSums), where the piece has middle rows:
    // their border columns here, a lane a row, each into its own sum too.
    const bool by_span = kSpanSums && middle_first < middle_end;
    const int border_cols = a.cols.head + a.cols.tail;
    if (by_span) {
#pragma unroll 1
      for (int32_t i = middle_first + lane; i < middle_end; i += 32) {
        const T* row = stage + lead + (i - piece) * stride;
#pragma unroll 1
        for (int k = 0; k < border_cols; ++k) {
          const A value = to_acc(row[border_column(a.cols, width, k)]);
          add_border_column(sums, a.cols, k, value);
          span_sum -= value;
        }
      }
    }
    // The piece's border rows, a few at a time (staged_border_rows): 2 where there are no more, else
    // kStagedBorderRows<T>. With kSpanSums before the middle rows' walk (their elements come off the span's sum),
    // else after it.
    const auto piece_border_rows = [&] {
      const BorderRows border = border_rows_of(a, height, piece, piece_end);
      const T* piece_stage = stage + lead;  // the piece's row i - piece at (i - piece) * stride
      if (border.count <= 2) {
        if (border.count > 0) {
          staged_border_rows<T, 2, kSpanSums>(a, piece_stage, piece, border, 0, lane, cells, by_span, span_sum);
        }
      } else {
        for (int32_t k0 = 0; k0 < border.count; k0 += kStagedBorderRows<T>) {
          staged_border_rows<T, kStagedBorderRows<T>, kSpanSums>(a, piece_stage, piece, border, k0, lane, cells,
                                                                 by_span, span_sum);
        }
      }
    };
    bool span_taken = false;
    if constexpr (kSpanSums) {
      piece_border_rows();
      // A value that is not finite anywhere in the span (or a sum that overflows) leaves some lane's difference not
      // finite: then the middle rows' middle columns by the column walk, which only adds.
      span_taken = by_span && __all_sync(0xffffffffu, isfinite(span_sum));
      if (span_taken) sums.middle += span_sum;
      span_sum = A(0);
    }
    // A lane's column, and its first row and row step: rows narrower than a warp take 32 / W rows at once (lanes past
    // them idle), wider ones a column a lane, 32 apart.
    const int32_t row_lanes = width < 32 ? 32 / width : 1;
    const int32_t lane_row = width < 32 ? lane / width : 0;
    if (!span_taken && middle_first < middle_end && lane_row < row_lanes) {
      // The lane's middle rows, lane_row, lane_row + row_lanes, ..., each `step` elements after the last.
      const int32_t lane_rows = (middle_end - middle_first - lane_row + row_lanes - 1) / row_lanes;
      const int32_t step = row_lanes * stride;
#pragma unroll 1
      for (int32_t col = lane - lane_row * width; col < width; col += 32) {
        // Where the span was tried its border columns are in their sums already.
        if (by_span && (col < a.cols.head || col >= width - a.cols.tail)) continue;
        // A plain loop, unrolled by 4. Trips of 4 shared loads issued before their adds (load_trip) were slower: H200,
        // padding 1, r57 152 -> 206 us, r29 92 -> 113, r49 61 -> 73, r48 101 -> 112 (docs/limits.md §85).
        A column = 0;
        const T* element = stage + lead + (middle_first - piece + lane_row) * stride + col;
#pragma unroll 4
        for (int32_t j = 0; j < lane_rows; ++j, element += step) column += to_acc(*element);
        sums.add(col, column);
      }
    }
    if constexpr (!kSpanSums) piece_border_rows();
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

// Columns [first[r], end[r]) of kRows border rows (tap_run: their middle columns, or pieces of one row's), each row's
// summed by the warp, the rows' loads in flight together: a warp whose plane is all border rows waited on a round trip
// a row (r33 [7000, 40, 6, 168] bfloat16 at padding 3: its tap_grid_kernel took 0.61 ms a row at a time where main's
// took 0.50, H200 Nsight Compute, docs/limits.md §90). 2- and 4-byte x by 16-byte loads of the vectors the columns
// touch, a vector of each row a trip, each element kept by a compare (a vector's other elements lie in the same 16
// bytes as a kept one: no line DRAM would not fetch anyway); a scalar load per element took most of r33's 949 warp
// instructions a plane at padding 1 (§82). float64 a load per element, eight in flight in all (two were slower on r51,
// [46, 39, 14, 46] at padding 1: 7.4 us against 5.7, §85; its vectors of two spilled tap_grid_kernel<double, 0,
// kRowsWalk> on sm_90). The loads go through the read-only cache, not streaming (__ldcs): a border row shares its first
// and last lines with the rows beside it, which the same warp reads next (with streaming vectors r33 at padding 3 read
// 1.15x slower, H100, §88).
template <typename T, int kRows>
__device__ __forceinline__ void border_rows_middle(const T* const (&rows)[kRows], const uint32_t (&first)[kRows],
                                                   const uint32_t (&end)[kRows], int lane, acc_t<T> (&middle)[kRows]) {
  using A = acc_t<T>;
  A sum[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) sum[r] = A(0);
  if constexpr (sizeof(T) == 8) {
    // Positions in 64 bits: in 32, tap_grid_kernel<double, 0, kRowsWalk> spilled on sm_90.
    constexpr int kLoads = 8 / kRows;  // a row's loads a trip
    int64_t span = 0;  // the longest row's columns
#pragma unroll
    for (int r = 0; r < kRows; ++r) span = max(span, static_cast<int64_t>(end[r]) - first[r]);
#pragma unroll 1
    for (int64_t c0 = lane; c0 < span; c0 += 32 * kLoads) {
      A v[kRows][kLoads];
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
#pragma unroll
        for (int u = 0; u < kLoads; ++u) {
          const int64_t c = first[r] + c0 + 32 * u;
          v[r][u] = c < end[r] ? __ldg(rows[r] + c) : A(0);
        }
      }
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
#pragma unroll
        for (int u = 0; u < kLoads; ++u) sum[r] += v[r][u];
      }
    }
  } else {
    // 32-bit unsigned positions (W is under 2^31, tap_path: no wrap past 2^32). A row's vector v holds its columns
    // v * kVec - lead on: the columns of its first vector before the row's first wrap to 2^32 - lead.. and fail
    // `< end`. Rows start `lead` elements past a 16-byte boundary, each its own.
    constexpr uint32_t kVec = 16 / sizeof(T);
    uint32_t lead[kRows], first_vector[kRows], end_vector[kRows], trips = 0;
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      lead[r] = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(rows[r]) % 16 / sizeof(T));
      first_vector[r] = (first[r] + lead[r]) / kVec;
      end_vector[r] = (end[r] + lead[r] + kVec - 1) / kVec;
      trips = max(trips, end_vector[r] - first_vector[r]);
    }
#pragma unroll 1
    for (uint32_t t = lane; t < trips; t += 32) {
      uint4 x[kRows];
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        const uint32_t v = first_vector[r] + t;
        const uint4* vectors = reinterpret_cast<const uint4*>(rows[r] - lead[r]);
        x[r] = v < end_vector[r] ? __ldg(vectors + v) : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        const uint32_t col = (first_vector[r] + t) * kVec - lead[r];
        A kept[kVec];
#pragma unroll
        for (uint32_t k = 0; k < kVec; ++k) {
          kept[k] = col + k >= first[r] && col + k < end[r] ? vec_elem<T>(x[r], k) : A(0);
        }
        // Pairs first, as vec_sum adds a vector.
#pragma unroll
        for (uint32_t width = 1; width < kVec; width *= 2) {
#pragma unroll
          for (uint32_t k = 0; k + width < kVec; k += 2 * width) kept[k] += kept[k + width];
        }
        sum[r] += kept[0];
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r) middle[r] = warp_sum(sum[r]);
}

// Run `unit` (plane unit / chunks, rows [first_row, end_row)): its middle rows' partials (the middle columns' sum, then
// each border column's, from the same loads) into `partials`, its border rows' cells into the plane's cells of `grid`
// (kStaged: by staged_walk, from its stage). kBySpan: the middle rows by middle_by_span, or where it meets a value that
// is not finite by the span walk; with kStaged, the staged walk's span sums (its kSpanSums). Row and column indices are
// 32-bit (tap_path) and the output addresses are made after the loads: registers for the loads.
template <typename T, bool kEvictFirst, int kSide, bool kStaged, bool kBySpan>
__device__ __forceinline__ void tap_run(const TapSumsArgs& a, int64_t unit, int lane, acc_t<T>* warp_border_sums,
                                        T* warp_stage) {
  using A = acc_t<T>;
  // The run's plane and chunk, and the plane's batch and channel: by multiply-and-shift divisions where the units
  // allow (TapSumsArgs::unit_divisions): two 32-bit divisions took 7.7% of the reader's instructions on r16 of the
  // sweep at padding 3 (H100 SASS counts, docs/limits.md §119).
  int64_t plane;
  int32_t chunk;
  const T* base = static_cast<const T*>(a.x);  // then the plane's [H, W], rows contiguous
  if (a.unit_divisions) {
    const uint32_t run = static_cast<uint32_t>(unit), plane32 = divide(run, a.chunk_divisor);
    const uint32_t b32 = divide(plane32, a.channel_divisor);
    chunk = static_cast<int32_t>(run - plane32 * static_cast<uint32_t>(a.chunks));
    plane = plane32;
    base += b32 * a.stride_b + (plane32 - b32 * static_cast<uint32_t>(a.channels)) * a.stride_c;
  } else {
    plane = unit / a.chunks;
    chunk = static_cast<int32_t>(unit - plane * a.chunks);
    const int64_t b = plane / a.channels;
    base += b * a.stride_b + (plane - b * a.channels) * a.stride_c;
  }
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
  if constexpr (kStaged) {
    staged_walk<T, kEvictFirst, kSide, kBySpan>(base, a, first_row, end_row, lane, warp_stage, sums,
                                                plane_cells<A>(a, plane));
  } else if constexpr (kBySpan) {
    if (middle_first < middle_end &&
        !middle_by_span<T, kEvictFirst, kSide>(base, a, middle_first, middle_end - middle_first, lane, sums)) {
      span_walk<T, kEvictFirst, kSide>(base, a, middle_first, middle_end - middle_first, lane, sums);
    }
  } else if (middle_first < middle_end) {
    if constexpr (kSide == kVectorBorderSide) {
      span_walk<T, kEvictFirst, kSide>(base, a, middle_first, middle_end - middle_first, lane, sums);
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
  if constexpr (kStaged) return;  // its border rows came from the stage
  // The run's border rows, each a row of the grid's cells: a row's middle columns by border_rows_middle, its border
  // column k by lane k. The partials are stored first: the border rows then have the registers of `sums`. The plane's
  // cells, border_column, border_rows_of and the cells' stores written out: through them ptxas computed the
  // cells' offset before the partials' stores, and tap_grid_kernel<double, 0, kRowsWalk> spilled 8 bytes on sm_90.
  const int32_t own_col = lane < a.cols.head ? lane : width - a.cols.tail + (lane - a.cols.head);
  const bool middle_col = width - a.cols.tail > a.cols.head;
  A* cells = static_cast<A*>(a.grid) + plane * a.rows.segments * a.cols.segments;  // [row segments, col segments]
  const int32_t head_rows = max(0, min(end_row, a.rows.head) - first_row);
  const int32_t tail_from = max(first_row, max(a.rows.head, height - a.rows.tail));
  const int32_t border_rows = head_rows + max(0, end_row - tail_from);
  // kBorderRowsAtOnce rows at a time, a last row alone repeated in the group's other slots (cached loads, no store);
  // but one whose middle is more than a trip of the warp takes the slots by pieces of its middle: repeated, each of
  // its loads waited on the same vector's twin, one vector in flight a lane where a row at a time had two (r12 [3, 60,
  // 62, 6276] float32 at padding 3, runs of 3 rows, 1.07x main's forward; r33's rows of 21 vectors lost 6% at padding
  // 1 by pieces; H100, docs/limits.md §91).
  constexpr int kRows = kBorderRowsAtOnce<T>;
  const uint32_t col_first = a.cols.head, col_end = width - a.cols.tail;  // the middle columns
  const bool long_middle = middle_col && col_end - col_first > 32 * 16 / sizeof(T);
#pragma unroll 1
  for (int32_t k0 = 0; k0 < border_rows; k0 += kRows) {
    const bool by_pieces = kRows > 1 && long_middle && k0 + 1 == border_rows;
    int32_t row_index[kRows];
    const T* rows[kRows];
    uint32_t first[kRows], end[kRows];
    A own[kRows], middle[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const int32_t k = k0 + r < border_rows && !by_pieces ? k0 + r : k0;
      row_index[r] = k < head_rows ? first_row + k : tail_from + (k - head_rows);
      rows[r] = base + row_index[r] * a.stride_h;
      own[r] = lane < border_cols ? to_acc(rows[r][own_col]) : A(0);
      // By pieces: piece r of kRows (in order, together the middle).
      first[r] = by_pieces ? col_first + (col_end - col_first) * r / kRows : col_first;
      end[r] = by_pieces ? col_first + (col_end - col_first) * (r + 1) / kRows : col_end;
    }
    if (middle_col) {
      border_rows_middle<T, kRows>(rows, first, end, lane, middle);
      if (by_pieces) {
#pragma unroll
        for (int r = 1; r < kRows; ++r) middle[0] += middle[r];
      }
    } else {
#pragma unroll
      for (int r = 0; r < kRows; ++r) middle[r] = A(0);
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      if (k0 + r >= border_rows) break;
      A* row_cells = cells + segment_of<int64_t>(a.rows, row_index[r], a.height) * a.cols.segments;
      if (lane == 0 && middle_col) row_cells[a.cols.head] = middle[r];
      if (lane < border_cols) row_cells[partial_column_segment(1 + lane, a.cols, middle_col)] = own[r];
    }
  }
}

}  // namespace
}  // namespace fusedlse
