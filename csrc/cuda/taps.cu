// padding's per-tap sums (the forward's read of x when padding > 0) and their adjoint's first step (each segment
// pair's value; broadcast_hw.cu writes grad_x from them), for the shapes the kernels take (kernels.h: TapSumsArgs,
// TapBroadcastArgs); fusedlse.cpp's ATen code computes the same for the others. Sums are only ever added, in an
// order fixed by the shape, never subtracted: an infinity in a cropped border reaches only the taps that keep it, and
// results are bitwise reproducible.
// Only CUDA headers are included: see kernels.h. The stages, in the order x flows through them, are in kernels/.

#include "kernels.h"
#include "kernels/cut.cuh"
#include "kernels/dtype.cuh"
#include "kernels/load.cuh"
#include "kernels/reduce.cuh"
#include "kernels/read_tap_rows.cuh"
#include "kernels/read_tap_channels.cuh"
#include "kernels/combine_taps.cuh"
#include "kernels/small_plane_taps.cuh"
#include "launch.cuh"

namespace fusedlse {
namespace {

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
