// Padding's tap reader over channels-last x (TapSumsArgs::channels_walk; tap_grid_kernel's channels walks in
// ../taps.cu): a warp a run of rows of a slice of channels, lanes across channels and positions.
#pragma once

#include "cut.cuh"
#include "tap_run_sums.cuh"

namespace fusedlse {
namespace {

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
    // Each load steps its column and wraps into the next row, whatever the layout. A second loop for rows without a
    // gap between them (address a constant step, no wrap: about 11% fewer instructions a trip, sm_90 SASS) was in the
    // series of docs/limits.md §83-88, where channels-last x at padding 3 read slower than this loop (H100, r37 1.16x,
    // r38 1.20x, r21 1.11x; §88-89).
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

// The middle columns [cols.head, W - cols.tail) of rows [first_row, first_row + row_count) of one channel
// (channel_base: its element (0, 0)) that fall to this lane, position_lanes apart, flat (a lane's positions run on from
// row to row; TapSumsArgs::middle_width and middle_step_*): every value a middle one, so a load and an add with no
// compare of its column, where the walk over all of a row's columns sent each through RunSums::add, about 20
// instructions a 2-byte element (H100 SASS counts of r37 [24, 1439, 165, 45] bfloat16 channels-last at padding 1, 61%
// of its reader's instructions; docs/limits.md §119). A trip within one row loads at a constant step (about 8
// instructions an element, sm_90 SASS); one that wraps into the next row steps each load's column. Offsets from the
// run's first element in 32 bits (a run spans fewer than 2^31 elements: tap_sums_cuda's chunk_rows), and a trip's
// values raw until its adds: converted beside its load, a 16-bit value made ptxas wait for each load before issuing the
// next (the bfloat16 forwards of r21, r37 and r38 1.35-2.39x main's, H100), and 64-bit addresses spilled registers
// under tap_grid_kernel's cap (docs/limits.md §120). Their sum, in a fixed order.
template <typename T, bool kEvictFirst>
__device__ __forceinline__ acc_t<T> middle_columns_walk(const T* channel_base, const TapSumsArgs& a,
                                                        int32_t first_row, int32_t row_count, int position_lane) {
  static_assert(sizeof(T) == 2, "2-byte x's walk (channel_run)");
  using A = acc_t<T>;
  // 16 loads in flight a lane (1 KiB a warp, as float32's 8 and float64's 4 elsewhere): the trips within a row at
  // once, the wrapping ones 8 at a time. Against 8 at once: r21, r37, r38 at padding 1-3 0.914-0.982 of the forward's
  // time, the other channels-walk pairs 1.000-1.011 (H100, docs/limits.md §121).
  constexpr int kLoads = 2 * kTapUnroll;
  const int32_t width = a.middle_width, step = a.position_lanes;
  const uint32_t count = static_cast<uint32_t>(row_count) * static_cast<uint32_t>(width);
  const T* run = channel_base + first_row * a.stride_h + a.cols.head * a.stride_w;  // [rows, middle columns]
  const int32_t lead_rows = position_lane / width;
  int32_t col = position_lane - lead_rows * width;
  uint32_t offset = static_cast<uint32_t>(lead_rows * a.stride_h + col * a.stride_w);
  A total = 0;
  // A lane's step of position_lanes positions within a row, in elements.
  const uint32_t lane_step = static_cast<uint32_t>(step) * static_cast<uint32_t>(a.stride_w);
  const auto step_on = [&] {
    offset += a.middle_step_offset;
    col += a.middle_step_cols;
    if (col >= width) col -= width, offset += a.middle_wrap_offset;
  };
#pragma unroll 1
  for (uint32_t base = position_lane; base < count; base += static_cast<uint32_t>(step) * kLoads) {
    if (col + step * (kLoads - 1) < width && base + step * (kLoads - 1) < count) {
      // A whole trip within the lane's row: its loads a constant step apart, no column stepped between them.
      const T* at = run + offset;
      T v[kLoads];
#pragma unroll
      for (int u = 0; u < kLoads; ++u) v[u] = load_once<kEvictFirst>(at + u * lane_step);
#pragma unroll
      for (int u = 0; u < kLoads; ++u) total += to_acc(v[u]);
      offset += (kLoads - 1) * lane_step;
      col += (kLoads - 1) * step;
      step_on();
    } else {
      // Trips that wrap into the next row (or end the run): as many positions, half of them a load trip at a time
      // (registers: with all of them at once tap_grid_kernel<T, 0 and 1, kChannelsWalk> spilled on sm_89 and sm_90).
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        load_trip_until<T, kLoads / 2>(
            [&](int u) { return base + step * (half * (kLoads / 2) + u) >= count; },
            [&](int) {
              const T value = load_once<kEvictFirst>(run + offset);
              step_on();
              return value;
            },
            [&](int, const T& value) { total += to_acc(value); });
      }
    }
  }
  return total;
}

// The border columns (the first cols.head, then the last cols.tail) of rows [first_row, first_row + row_count) of one
// channel into `sums` (RunSums::add), flat as middle_columns_walk walks the middle ones (position_lanes apart, 32-bit
// offsets, raw values converted at their adds), kTapUnroll / 2 loads in flight: the border columns are a few of a
// row's, and 8 in flight spilled registers (sm_90). A value's column is stepped again for its add rather than kept
// from its load: registers.
template <typename T, bool kEvictFirst, int kSide>
__device__ __forceinline__ void border_columns_walk(const T* channel_base, const TapSumsArgs& a, int32_t first_row,
                                                    int32_t row_count, int position_lane,
                                                    RunSums<acc_t<T>, kSide>& sums) {
  static_assert(sizeof(T) == 2, "2-byte x's walk (channel_run)");
  constexpr int kLoads = kTapUnroll / 2;
  const int32_t border_cols = a.cols.head + a.cols.tail, step = a.position_lanes;
  const int32_t width = static_cast<int32_t>(a.width);
  const uint32_t count = static_cast<uint32_t>(row_count) * static_cast<uint32_t>(border_cols);
  const int32_t step_rows = step / border_cols, step_k = step - step_rows * border_cols;
  const T* run = channel_base + first_row * a.stride_h;  // [rows, W]
  const uint32_t stride_h = static_cast<uint32_t>(a.stride_h), stride_w = static_cast<uint32_t>(a.stride_w);
  uint32_t row = static_cast<uint32_t>(position_lane / border_cols);
  int32_t k = position_lane % border_cols;
#pragma unroll 1
  for (uint32_t base = position_lane; base < count; base += static_cast<uint32_t>(step) * kLoads) {
    int32_t add_k = k;
    load_trip_until<T, kLoads>(
        [&](int u) { return base + step * u >= count; },
        [&](int) {
          const T value = load_once<kEvictFirst>(
              run + (row * stride_h + static_cast<uint32_t>(border_column(a.cols, width, k)) * stride_w));
          k += step_k;
          row += step_rows;
          if (k >= border_cols) k -= border_cols, ++row;
          return value;
        },
        [&](int, const T& value) {
          add_border_column(sums, a.cols, add_k, to_acc(value));
          add_k += step_k;
          if (add_k >= border_cols) add_k -= border_cols;
        });
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
  // position lane 0 (every lane takes part in the shuffles). 2-byte x's flat walk by each row's middle columns and
  // its border columns apart (middle_columns_walk, border_columns_walk); 4- and 8-byte x's by every column through
  // RunSums::add (positions_walk): the walk apart was 1.16-1.17x slower on float64 r55 [177, 33, 466, 25] and
  // 0.98-1.03x on float32 r20 [16, 197, 186, 20], where it made bfloat16 and float16 forwards 0.68-0.91x (r21, r37,
  // r38; H100, docs/limits.md §120).
  const auto walk_rows = [&](int32_t row, int32_t count, auto&& f) {
    RunSums<A, kSide> sums;
    sums.lane_sums = warp_border_sums + lane;
    sums.first_col = a.cols.head;
    sums.end_col = static_cast<int32_t>(a.width) - a.cols.tail;
    sums.width = static_cast<int32_t>(a.width);
    if constexpr (kSide == 0) {
      for (int k = 0; k < border_cols; ++k) sums.lane_sums[32 * k] = 0;
    }
    if (active) {
      if constexpr (kRowByRow || sizeof(T) > 2) {
        positions_walk<T, kEvictFirst, kSide, kRowByRow>(channel_base, a, row, count, position_lane, sums);
      } else {
        if (a.middle_width > 0) {
          sums.middle += middle_columns_walk<T, kEvictFirst>(channel_base, a, row, count, position_lane);
        }
        if (border_cols > 0) {
          border_columns_walk<T, kEvictFirst, kSide>(channel_base, a, row, count, position_lane, sums);
        }
      }
    }
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
  A* cells = plane_cells<A>(a, plane);
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

}  // namespace
}  // namespace fusedlse
