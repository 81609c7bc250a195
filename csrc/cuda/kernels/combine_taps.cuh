// Combining the tap reader's partials and cells into each plane's taps and its share of the cropped GEMM
// (combine_planes), or by groups of lanes into the middle row's cells and where asked the taps
// (combine_by_lane_groups), and the adjoint's first step (spread_taps_over_cells): the bodies of tap_combine_kernel,
// tap_group_combine_kernel and tap_spread_kernel (../taps.cu), and their parts: a run's partials added, a channel's
// weight staged, the cells a tap keeps, a plane's channel and its group's columns.
#pragma once

#include "../launch.cuh"
#include "load.cuh"
#include "tap_run_sums.cuh"

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

// Adds up to kRuns runs' partials into `totals`: runs first, first + step, ... below `runs` of `plane_partials`
// ([runs, partial_count]). Every load of the trip is issued before the first add, and the adds go run by run as
// add_run's, so the sums are bitwise those of add_run over the same runs in turn. For the lane groups' combine where a
// plane's runs are many: few planes get 32 lanes each, and a lane adding its runs one at a time waits a round trip to
// L2 for each (r63 of the sweep, 7 planes of 689576 float64 rows: 7.9 us in its combine against 13.7 in its reader,
// H100, docs/limits.md §129). kRuns 1 is add_run. tap_combine_kernel keeps add_run: a loop like this one spilled its
// float64 kSide-2 instance and bought no forward on r29 or r48 (§81-82).
template <typename A, int kMaxPartials, int kRuns>
__device__ __forceinline__ void add_runs(const A* plane_partials, int64_t first, int step, int64_t runs,
                                         int partial_count, A (&totals)[kMaxPartials]) {
  if constexpr (kRuns == 1) {
    add_run(plane_partials + first * partial_count, partial_count, totals);
  } else {
    A values[kRuns][kMaxPartials];
#pragma unroll
    for (int r = 0; r < kRuns; ++r) {
      if (first + r * step >= runs) break;
      const A* run = plane_partials + (first + r * step) * partial_count;
#pragma unroll
      for (int k = 0; k < kMaxPartials; ++k) {
        if (k >= partial_count) break;
        values[r][k] = run[k];
      }
    }
#pragma unroll
    for (int r = 0; r < kRuns; ++r) {
      if (first + r * step >= runs) break;
#pragma unroll
      for (int k = 0; k < kMaxPartials; ++k) {
        if (k >= partial_count) break;
        totals[k] += values[r][k];
      }
    }
  }
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

// The cells tap `tap` keeps: rows x cols of them from cell `first` of the plane's grid ([row, column segments]), row
// segment `row` and column segment `col`.
struct TapCells {
  int32_t first, rows, cols, row, col;
};
__device__ __forceinline__ TapCells tap_cells(const TapSumsArgs& a, int tap) {
  const int t = tap / a.cols.taps, u = tap - t * a.cols.taps;
  return {a.rows.first[t] * a.cols.segments + a.cols.first[u], a.rows.end[t] - a.rows.first[t],
          a.cols.end[u] - a.cols.first[u], a.rows.first[t], a.cols.first[u]};
}

// The sum of the cells `kept` holds, of a plane's cells [row, column segments], row by row and each row's columns in
// order: every combine adds a tap's cells in this order (combine_by_lane_groups' own taps too, its middle row from
// registers, in a loop of its own: this one over a row accessor took its float32 kSide-0 instance to an 8-byte spill
// on sm_89), so each gives the same taps bitwise.
template <typename A>
__device__ __forceinline__ A kept_cells_sum(const TapSumsArgs& a, const A* plane_cells, const TapCells& kept) {
  A total = 0;
  for (int r = 0; r < kept.rows; ++r) {
    const A* row = plane_cells + kept.first + r * a.cols.segments;
    for (int q = 0; q < kept.cols; ++q) total += row[q];
  }
  return total;
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

// tap_combine_kernel's dynamic shared memory a warp, in values of the accumulation type: the plane's cells, its taps,
// then where TapSumsArgs::weight_pitch > 0 its channel's weight, column n's taps at n * weight_pitch. (c_out / groups
// is TapSumsArgs::group_columns; read from that field, the float64 kSide-2 instances spilled 4 bytes on sm_90.)
__host__ __device__ inline int64_t combine_warp_values(const TapSumsArgs& a) {
  return a.rows.segments * a.cols.segments + a.rows.taps * a.cols.taps +
         (a.weight_pitch > 0 ? a.c_out / a.groups * a.weight_pitch : 0);
}

// tap_combine_kernel's body (../taps.cu), a warp per plane: its cells staged in shared memory (the border rows' from
// the reader's grid, the middle row's the runs' partials added, lanes across runs, then a butterfly: a fixed order),
// then each tap's sum of the cells it keeps, lanes across taps; then, where asked, the plane's share of the cropped
// GEMM (without shares this combine runs only where plan::tap_combine_lanes gives a plane 32 lanes; elsewhere
// combine_by_lane_groups), lanes across columns, the taps in order (from shared memory: every lane needs every tap).
// Each step issues its loads before its adds: the combine's time is its round trips to L2 (H200 headline padding 1:
// 17.6 us with a trip per border column, per cell a tap keeps and per 32 columns of shares; padding 3, 40.9). The
// weight of a warp's first plane's channel is staged in shared memory before the wait for the reader
// (TapSumsArgs::weight_pitch; the caller's, ready before the reader started), whose last blocks it overlaps: the
// shares' loads after the wait took 4.1 us of the headline's padding 1, the cells' 3.6, a launch with nothing after its
// wait 0.6 (docs/limits.md §77). kTapSums false (TapSumsArgs::sums null): the taps are staged for the shares but not
// stored (an instance, not a run-time test: either way the float64 kernel without the store spills 16 bytes on sm_90,
// and the run-time test made the one with it spill too). kSide as tap_grid_kernel's (combine_side): a run's partials
// are at most 1 + 2 * kSide (registers for them), and the blocks per SM tap_combine_blocks_per_sm says. Dynamic shared
// memory: combine_warp_values a warp.
template <typename T, bool kTapSums, int kSide, bool kStagedWeight>
__device__ __forceinline__ void combine_planes(const TapSumsArgs& a) {
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
        }
      }
    }
    if (!middle_row) store_held();
    __syncwarp();  // cells (and the staged weight) written by other lanes are read by every lane
    for (int tap = lane; tap < taps; tap += 32) {
      const A total = kept_cells_sum(a, plane_cells, tap_cells(a, tap));
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
          // The weight where it lies kept raw until its products: a 16-bit value converted beside its load made ptxas
          // wait for each load before issuing the next (27 of the trip's 32 loads, sm_90 SASS; serial_loads.py,
          // docs/limits.md §120).
          std::conditional_t<kStagedWeight, A, T> w[kShareColumns][kShareTaps];
#pragma unroll
          for (int j = 0; j < kShareColumns; ++j) {
            const Offset column_first = static_cast<Offset>(in_group >> j & 1 ? column0 + 32 * j : 0) * weight_pitch;
#pragma unroll
            for (int u = 0; u < kShareTaps; ++u) {
              if (t0 + u >= taps) break;
              if constexpr (kStagedWeight) {
                w[j][u] = weight_stage[column_first + t0 + u];
              } else {
                w[j][u] = __ldg(weight + column_first + t0 + u);
              }
            }
          }
#pragma unroll
          for (int j = 0; j < kShareColumns; ++j) {
#pragma unroll
            for (int u = 0; u < kShareTaps; ++u) {
              if (t0 + u >= taps) break;
              total[j] += plane_taps[t0 + u] * to_acc(w[j][u]);
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

// The combine by groups of lanes (TapSumsArgs::group_lanes), where no shares are asked: the middle row's cells, each
// the sum of the plane's runs' partials as tap_combine_kernel adds them (lane l of the plane the runs l, l + 32, ...,
// then the same tree over the lanes), by a group of group_lanes lanes per plane (a power of two), at least as many as
// the runs, and with kTaps as many as plan::tap_combine_lanes asks for: a lane past the runs adds nothing, so the tree
// over fewer lanes gives the same sums (a -0 may come out +0). They go to `grid`, whose border rows' cells are the
// reader's already. With kTaps, then each tap's sum of the cells it keeps, read back from `grid` (the warp's own
// stores, after __syncwarp), a lane a (plane, tap) of the warp's planes, the cells added in tap_combine_kernel's order:
// the same sums. tap_combine_kernel's warp per plane left 31 lanes idle where a plane is one run, and ran each plane's
// steps one after another, a round trip to L2 each: r16 of the sweep ([1378, 166, 25, 39] float32, 228748 planes of one
// run) at padding 1, 171 us of its combine against 326 for its reader (H100, docs/limits.md §114). With
// TapSumsArgs::own_taps (the taps alone asked, and groups of few lanes: plan::tap_combine_own_taps), each group's lanes
// take their own plane's taps instead, the middle row's cells from the registers the group's sums left them (every lane
// of the group holds them), the other rows' from `grid`, in the same order: a plane's middle cells are `grid` values
// `cells` apart, each store a sector of its own, and those stores took r16's combine at padding 3 (7 a plane) to 57 us
// against 15 at padding 1 (3 a plane; Nsight Compute, 85% of its sectors excess, H100). A stage in shared memory for
// them instead (s118) took r10 at padding 3 to 1.02x its time (H200, docs/limits.md §125), and these registers to
// 1.077x (H100, §126; 80 registers a thread for float32 kSide 0, not 60): where the planes are few their stores cost
// little, so the rule keeps this way to groups of few lanes, which tap_combine_lanes gives the most planes. kSide as
// tap_grid_kernel's (combine_side; registers for a run's partials); kOwnTaps (TapSumsArgs::own_taps) an instance of its
// own, so that the other keeps its registers.
template <typename A, int kSide, bool kTaps, bool kOwnTaps>
__device__ __forceinline__ void combine_by_lane_groups(const TapSumsArgs& a) {
  static_assert(kTaps || !kOwnTaps, "combine_by_lane_groups: its own taps only where the taps are asked");
  constexpr int kMaxPartials = 1 + 2 * (kSide > 0 ? kSide : kMaxTapCut);
  // A lane's runs a trip (add_runs): kTapCombineRunValues values in flight. One where a run's partials are up to 17
  // (kSide 0), and with kOwnTaps, whose groups of 1-2 lanes take planes of few runs (4 runs spilled its float64 kSide-1
  // instance on sm_90, 12 bytes).
  constexpr int kRunsAtOnce = kSide == 0 || kOwnTaps ? 1 : kTapCombineRunValues / kMaxPartials;
  const A* partials = static_cast<const A*>(a.partials);  // [B*C, chunks, 1 + border columns]
  A* grid = static_cast<A*>(a.grid);                      // [B*C, row segments, column segments]
  A* sums = static_cast<A*>(a.sums);                      // [B*C, kH, kW] where kTaps
  wait_for_previous_grid();
  const int lane = threadIdx.x & 31, group_lanes = a.group_lanes, group_lane = lane % group_lanes;
  const int partial_count = 1 + a.cols.head + a.cols.tail;
  const bool middle_row = a.height - a.rows.tail > a.rows.head, middle_col = a.width - a.cols.tail > a.cols.head;
  const int64_t planes = a.batch * a.channels;
  const int64_t warp_planes = 32 / group_lanes;
  const int cells = a.rows.segments * a.cols.segments, taps = a.rows.taps * a.cols.taps;
  A* middle_cells = grid + a.rows.head * a.cols.segments;  // plane 0's, planes `cells` apart
  // Warps step together (the shuffles take the whole warp); a group past the last plane loads nothing.
  for (int64_t first = (static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5)) * warp_planes;
       first < planes; first += static_cast<int64_t>(gridDim.x) * kWarpsPerBlock * warp_planes) {
    const int64_t plane = first + lane / group_lanes;
    const bool real = plane < planes;
    A middle[kMaxPartials] = {};  // kOwnTaps: the plane's partials' sums, every lane of its group
    if (middle_row) {
      A totals[kMaxPartials] = {};
      const A* plane_partials = partials + plane * a.chunks * partial_count;
      for (int64_t chunk = group_lane; chunk < a.chunks; chunk += kRunsAtOnce * group_lanes) {
        if (!real) break;
        add_runs<A, kMaxPartials, kRunsAtOnce>(plane_partials, chunk, group_lanes, a.chunks, partial_count, totals);
      }
#pragma unroll
      for (int k = 0; k < kMaxPartials; ++k) {
        if (k >= partial_count) break;
        A total = totals[k];
        for (int offset = group_lanes / 2; offset > 0; offset >>= 1) {
          total += __shfl_xor_sync(0xffffffffu, total, offset);
        }
        if constexpr (kOwnTaps) middle[k] = total;
        if (!kOwnTaps && real && group_lane == 0 && (k > 0 || middle_col)) {
          middle_cells[plane * cells + partial_column_segment(k, a.cols, middle_col)] = total;
        }
      }
    }
    if constexpr (kOwnTaps) {
      // The plane's taps by its group's lanes. Column segment q of the middle row is partial k (partial_column_segment
      // inverted), picked from `middle` by selects (an index into it would put it in local memory).
      const auto middle_cell = [&](int q) {
        const int k = q == a.cols.head && middle_col ? 0 : q < a.cols.head ? q + 1 : q - (middle_col ? 1 : 0) + 1;
        A value = 0;
#pragma unroll
        for (int j = 0; j < kMaxPartials; ++j) {
          if constexpr (kSide == 0) {
            if (j >= partial_count) break;  // kMaxPartials is the widest cut's; most cuts have fewer
          }
          value = j == k ? middle[j] : value;
        }
        return value;
      };
      const A* plane_grid = grid + plane * cells;
      for (int tap = group_lane; real && tap < taps; tap += group_lanes) {
        const TapCells kept = tap_cells(a, tap);
        A total = 0;
        for (int r = 0; r < kept.rows; ++r) {
          if (middle_row && kept.row + r == a.rows.head) {
            for (int q = 0; q < kept.cols; ++q) total += middle_cell(kept.col + q);
          } else {
            const A* row = plane_grid + kept.first + r * a.cols.segments;
            for (int q = 0; q < kept.cols; ++q) total += row[q];
          }
        }
        sums[plane * taps + tap] = total;
      }
    } else if constexpr (kTaps) {
      __syncwarp();  // the middle cells stored by other lanes are read below
      const int pairs = static_cast<int>(min(warp_planes, planes - first)) * taps;
      for (int pair = lane; pair < pairs; pair += 32) {
        const int64_t pair_plane = first + pair / taps;
        const int tap = pair % taps;
        const TapCells kept = tap_cells(a, tap);
        sums[pair_plane * taps + tap] = kept_cells_sum(a, grid + pair_plane * cells, kept);
      }
    }
  }
}

// The adjoint's first step: each segment pair's value, the sum of the taps that keep it (taps in order), cell-major
// (TapBroadcastArgs).
template <typename A>
__device__ __forceinline__ void spread_taps_over_cells(const TapBroadcastArgs& a) {
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

}  // namespace
}  // namespace fusedlse
