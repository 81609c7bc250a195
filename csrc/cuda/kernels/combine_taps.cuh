// Combining the tap reader's partials and cells into each plane's taps and its share of the cropped GEMM
// (tap_combine_kernel and tap_middle_cells_kernel in ../taps.cu): a run's partials added, a channel's weight staged,
// the cells a tap keeps, a plane's channel and its group's columns.
#pragma once

#include "cut.cuh"
#include "load.cuh"

namespace fusedlse {
namespace {

// Adds a run's partial_count partials into `totals`: one trip of loads, all issued before the adds (load_trip_until).
// One run, not the loop over a plane's runs: that loop shared spilled tap_combine_kernel<double, false, 2> on sm_90
// (docs/limits.md §64). Several runs' loads before their adds measured no faster forward (H200: r29 of the sweep 97.2
// -> 96.5-97.0 us, r48 89.5 -> 88.5-89.6): the time after the reader lies elsewhere (docs/limits.md §81).
template <typename A, int kMaxPartials>
__device__ __forceinline__ void add_run(const A* run, int partial_count, A (&totals)[kMaxPartials]) {
  load_trip_until<A, kMaxPartials>([&](int k) { return k >= partial_count; }, [&](int k) { return run[k]; },
                                   [&](int k, A value) { totals[k] += value; });
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

}  // namespace
}  // namespace fusedlse
