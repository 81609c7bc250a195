// Plain-C++ interface between the ATen glue (ops_cuda.cpp) and every CUDA kernel: the fused launch (forward.cu, its
// stages in kernels/), the tiled GEMM + logsumexp (gemm_lse.cu), broadcast_hw (broadcast_hw.cu) and the split
// strategy's kernels (split.cu). Nothing from torch is included here, so the .cu files compile without ATen's heavy
// headers.
#pragma once

#include "tuning.h"

#include <cstdint>
#include <cuda_runtime_api.h>

namespace fusedlse {

enum class ScalarKind { kFloat, kHalf, kBFloat16, kDouble };

// How the kernel walks x.
//  kRows:         each (b, c) plane is contiguous: element (b, c, p) at b*stride_b + c*stride_c + p.
//  kChannelsLast: channels are contiguous:          element (b, c, p) at b*stride_b + c + p*stride_p.
enum class XLayout { kRows, kChannelsLast };

// What the launch produces.
//  kForward: out[b] = 10 * logsumexp_n(scale * (sums @ W.sum((2,3)))[b, n] + conv_bias[n] + bias[n]).
//  kSumsOnly: sums[b, c] = sum_p x[b, c, p] (the sum_hw op).
enum class Mode { kForward, kSumsOnly };

// Work decomposition, chosen on the host by plan_launch() in ops_cuda.cpp (the only place that sizes it).
// The launch is one-shot: every block reads one tile of x and exits; no block waits for another.
// Epilogue units: `unit_batches` batches x `unit_channels` channels; `unit_groups` per batch tile, `tiles` tiles.
// A unit waits for every item of its rows (and for the weight fold, in a forward), counted by one ticket.
// Reading items are numbered unit by unit (tile, then unit group, then batch, channel group and split), so each
// unit's items are read by neighbouring blocks and units complete one after another through the launch.
//  Split tiles (rows_per_warp == 0): a *group* is one row (kRows) or `group_channels` channels of one batch
//    (kChannelsLast). Each group is cut into `splits` items of `chunk` positions; block i reads item i, its eight
//    warps one contiguous eighth each, and writes one partial per row of the group, at slot row * splits + split.
//  Whole-row tiles (kRows with short rows, rows_per_warp = k > 0): block i reads items (rows)
//    [rows_per_block * i, rows_per_block * (i + 1)), warp w the k of them from k * w on; their sums are final.
//  Self-contained tiles (self_contained set; kRows only; a kernel of their own): block i reads whole batch tile i,
//    which is contiguous in memory, and runs its epilogue itself, from W.sum and the biases it staged in shared
//    memory while its loads were in flight: no tickets, no weight-fold blocks, no scratch. For small problems, where
//    a chain of tickets would cost more than the reads.
struct LaunchPlan {
  int64_t splits = 1;
  int64_t chunk = 0;
  int64_t rows_per_warp = 0;
  int64_t rows_per_block = 0;     // whole-row tiles: rows per block (rows_per_warp * 8)
  bool self_contained = false;
  int64_t group_channels = 1;     // kChannelsLast: channels per group (1 for kRows)
  int64_t groups_per_batch = 1;   // kRows: C; kChannelsLast: ceil(C / group_channels)
  int vec = 1;                    // kChannelsLast: channels per 16-byte load (1: scalar loads)
  int64_t read_blocks = 0;        // blocks that read x
  int64_t wsum_blocks = 0;        // blocks that fold weight.sum((2,3)) into the launch (kForward only):
  int64_t fold_pieces = 0;        //   fold_pieces per unit channel group, kFoldValues values of wsum each
  int64_t unit_batches = 1;
  int64_t unit_channels = 1;      // a multiple of group_channels unless it is C
  int64_t unit_groups = 1;        // ceil(C / unit_channels)
  int64_t tiles = 1;              // ceil(B / unit_batches)
  bool evict_first = true;        // x's loads (load_once, kernels/load.cuh): plan::evict_first_loads
  bool tickets = true;            // false for sum_hw when every item is a whole row (its sums are final), and for
                                  // self-contained tiles
};
struct FusedArgs {
  ScalarKind kind;
  XLayout layout;
  Mode mode;
  const void* x;          // [B, C, H, W] in `kind`, strides in elements below
  int64_t batch, channels, plane;  // B, C_in, H*W
  int64_t stride_b, stride_c, stride_p;
  const void* weight;     // [C_in, C_out / groups, kH*kW] contiguous, `kind` (kForward; grouped_taps_offset)
  int64_t c_out, kernel_area;
  int64_t groups = 1;     // the weight's: W.sum is block-diagonal, zero between groups
  const void* conv_bias;  // [C_out] `kind`, or nullptr
  const void* bias;       // C_out elements of `kind`, element n at n*bias_stride (0: one value for every n)
  int64_t bias_stride;
  double scale;           // 1 / (H_out * W_out)
  void* out;              // kForward: [B] in `kind`; kSumsOnly: [B, C_in] accumulation type
  void* partials;         // [B*C_in*splits] accumulation type; aliases `sums` when splits == 1
  void* sums;             // [B, C_in] accumulation type
  void* wsum;             // [C_in, wsum_stride] accumulation type, written by the launch (null for self-contained
                          // tiles); 16-byte aligned
  int64_t wsum_stride;    // C_out rounded up to whole 16-byte pieces (weight_sum_stride)
  void* zpart;            // [B, unit_groups, C_out] accumulation type: each unit's share of the GEMM (null for
                          // self-contained tiles)
  // Null when plan.tickets is false (nothing is counted). The launch's own, zeroed just before it:
  int* unit_tickets;      // [tiles * unit_groups]
  int* batch_tickets;     // [tiles]
  LaunchPlan plan;
};

// out[b] = 10 * logsumexp_n(scale * (sums @ weight_sum)[b, n] + conv_bias[n] + bias[n * bias_stride]), with
// torch.logsumexp's semantics for infinities and NaN, and no [B, C_out] tensor written: a tiled GEMM in the
// accumulation type (plain FMAs, so float32 stays float32-exact; float64 from 33 columns on by the tensor cores'
// float64 FMAs, exact as well) takes each row's logsumexp as its column tiles complete. Block (i, s) takes row tile
// i (kGemmTiles[tile].rows rows) and the s-th of `column_runs` equal runs of column tiles; with more than one run,
// each block leaves its rows' partial states and gemm_lse_merge adds them up in run order (so the result is the
// same on every run). Split-K (k_splits > 1): block (i, j, s) takes column tile j over channels
// [s x split_channels, (s + 1) x split_channels) and writes its raw logits, no biases, to partial_logits; bias_lse
// (BiasLseArgs::splits) adds the splits in order, then the biases and the logsumexp.
struct GemmLseArgs {
  ScalarKind kind;          // of conv_bias, bias and out; sums and weight_sum are its accumulation type
  const void* sums;         // [B, C_in] contiguous, accumulation type; or x itself (sums_out)
  const void* weight_sum;   // [C_in, C_out] contiguous, accumulation type
  const void* conv_bias;    // [C_out] contiguous, or nullptr
  const void* bias;         // C_out elements, element n at n * bias_stride (0: one value for every n)
  int64_t bias_stride;
  void* out;                // [B]
  void* partial_lse;        // [column_runs, B, 2] accumulation type (max, scaled sum); used when column_runs > 1
  void* partial_logits;     // [k_splits, B, C_out] accumulation type; used when k_splits > 1 (tiled or narrow)
  // The bfloat16 tensor-core tile's (kBf16MmaTile) workspace of bf16_mma_weight_bytes (tuning.h), which
  // launch_gemm_lse fills before the tile runs (kernels/gemm_lse.cuh, bf16_weight_fragments):
  void* weight_fragments;   // uint4 [bf16_mma_columns(C_out) / 8][ceil(C_in / 16)][32]: W.sum's pieces a lane
  void* column_biases;      // [bf16_mma_columns(C_out)] accumulation type: bias + conv_bias, zero past C_out
  int64_t batch, channels, c_out;
  int64_t column_runs;
  int64_t k_splits;         // 0 or 1: no split
  int64_t split_channels;   // a whole number of the tile's depth steps
  int tile;                 // index into kGemmTiles (tuning.h)
  double scale;             // 1 / (H_out * W_out)
  // The tiled kernels reading x's one-element planes where they lie (plan::Reader::kInEpilogue): x (of the
  // accumulation type) as `sums`, row b and channel c at b * x_batch_stride + c * x_channel_stride, and every value
  // loaded also written to sums_out [B, C_in] contiguous, the forward's saved sums. Null: sums contiguous.
  void* sums_out;
  int64_t x_batch_stride, x_channel_stride;
  // plane_width > 0: x's planes are plane_rows x plane_width elements, rows x_row_stride elements apart, and
  // the tensor-core tile sums its rows' float64 planes itself before its GEMM (plan::tile_sums_planes; columns
  // contiguous), or the narrow epilogue its rows' planes of any dtype (plan::narrow_reads_planes; plane_offsets),
  // saving them into sums_out where that is set. 0: x's planes are one element (or `sums` are sums).
  int64_t x_row_stride = 0;
  int plane_rows = 0, plane_width = 0;
  // The narrow epilogue's planes (plane_rows > 0): plane_elements of them, element e at plane_offsets[e] elements
  // from the plane's first (the host's list: no division a load).
  int plane_elements = 0;
  int64_t plane_offsets[kNarrowPlanesMaxElements] = {};
};

// Where the narrow epilogue's rows come from (narrow_source): the sums [B, C_in] (kSums); x's planes of 2 to
// kNarrowPlanesMaxElements elements, each summed by the lane that takes its channel (kPlanesInX, plan::
// narrow_reads_planes); or x's one-element planes of 16-bit x, their values the sums (kElementsInX: as many loads in
// flight as kSums, where kPlanesInX's are spent on a plane's further elements).
enum class NarrowSource : int { kSums = 0, kPlanesInX = 1, kElementsInX = 2 };

// padding's per-tap sums and their adjoint (taps.cu). One dimension of x as fusedlse::Cut (csrc/fusedlse.h) cuts it:
// `head` and `tail` inputs one by one, the middle between them in one piece, `segments` in all; tap t keeps segments
// [first[t], end[t]). The kernels take at most kMaxTapCut inputs one by one at each border and kMaxKernelTaps taps per
// dimension; the ATen path (fusedlse.cpp) takes the rest.
constexpr int kMaxTapCut = 8;
// TapSumsArgs::border_side for borders of 3 columns a side on whole-vector rows (whole_vector_rows; x of 2- and 4-byte
// elements, whose 16-byte vectors each hold a border): kept in registers by a reader instance that has the span
// walk's whole-vector branch alone. The general instance with 3 a side spilled under the reader's register cap
// (docs/limits.md §75); the shared-memory path (border_side 0) made the headline's padding-3 read 5.5 us slower than
// padding 1's (§65).
constexpr int kVectorBorderSide = 3;
constexpr int kMaxKernelTaps = 16;
struct TapCutGeometry {
  int32_t head, tail, segments, taps;
  int32_t first[kMaxKernelTaps], end[kMaxKernelTaps];
};

// n / d for 0 <= n < 2^31 by a multiply and a shift (d >= 1, below 2^31): q = (umulhi(n, magic) + n) >> shift.
struct FastDivisor {
  uint32_t magic, shift;
};
inline FastDivisor fast_divisor(uint32_t d) {
  uint32_t shift = 0;
  while ((uint64_t{1} << shift) < d) ++shift;
  return {static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << shift) - d)) / d + 1), shift};
}

// broadcast_hw: out[b, c, h, w] = rows[b, c], the backward's write of grad_x. With `cells` (padding's adjoint,
// broadcast_taps): out[b, c, h, w] = cells[(segment of h) * cut_cols.segments + (segment of w), b*C + c], every
// element of grad_x written once by the same 16-byte stores (rows unused).
struct BroadcastArgs {
  ScalarKind kind;     // of out; rows and cells are its accumulation type
  bool channels_last;  // out's layout: element (b, c, p) at (b*C + c)*plane + p, or at (b*plane + p)*C + c
  const void* rows;    // [B, C] contiguous
  void* out;           // [B, C, H, W], 16-byte aligned
  int64_t batch, channels, plane;
  int64_t blocks;      // grid size, from the host (broadcast_rows in ops_cuda.cpp)
  // padding's cut (or cells null): each segment pair's value, segment pairs numbered row segment first.
  const void* cells;                  // [rows.segments * cols.segments, B*C] contiguous
  int64_t height, width;              // plane = height * width
  int64_t middle_row_begin, middle_row_end, middle_col_begin, middle_col_end;  // the middle cell (may be empty)
  // Rows each warp of broadcast_cut_rows_kernel writes (blocks then counts its grid), or 0: the flat walk. Where out
  // is contiguous, its rows at least 32 whole 16-byte vectors (not 32k + 1) with a middle column, its borders at most
  // a vector.
  int64_t rows_per_warp;
  TapCutGeometry cut_rows, cut_cols;
  FastDivisor plane_divisor, width_divisor, channels_divisor;  // set where every element index is below 2^31
  FastDivisor height_divisor;  // set where B * C * H is below 2^31 (broadcast_cut_rows_kernel)
};

// tap_sums of x whose rows are contiguous (unit stride along W, or W = 1), or whose channels are (channels_walk). A
// warp reads runs of chunk_rows rows of a plane (of a slice of channels) and takes the border columns of its middle
// rows from the same loads. Per run it writes the middle rows' sums over the middle columns and over each border
// column to `partials`, and each border row's cells to `grid`; then the combine adds each plane's runs in order (the
// middle row's cells) and the cells each tap keeps: a warp per plane (and, where asked, the plane's share of the
// cropped GEMM), or groups of lanes a plane (group_lanes), the middle row's cells written to `grid`.
struct TapSumsArgs {
  ScalarKind kind;
  // [B, C, H, W] in `kind`: element (b, c, i, j) at b*stride_b + c*stride_c + i*stride_h + j (rows walks), or
  // + j*stride_w (channels walk)
  const void* x;
  int64_t batch, channels, height, width;
  int64_t stride_b, stride_c, stride_h, stride_w;
  TapCutGeometry rows, cols;
  int64_t chunk_rows, chunks;  // each plane's rows in `chunks` runs of chunk_rows (the last may be shorter)
  // The channels walk, where C is x's contiguous dimension (channels_last and its slices): a warp per run of rows of
  // a slice of channel_lanes channels of one batch, its lanes a grid of position_lanes (a power of two) by
  // channel_lanes, a lane walking the run's positions position_lanes apart for its channel (channel_slices slices
  // of each batch). Else the rows walks below, a warp per run of rows of one plane.
  bool channels_walk;
  int32_t channel_lanes, position_lanes;
  int64_t channel_slices;
  // A lane's step of position_lanes positions: position_lanes % W columns (position_step_cols), and in elements of x
  // that step with position_lanes / W rows (position_step_offset), and from column W of a row to column 0 of the
  // next (position_wrap_offset): the flat walk over all of a row's columns (4- and 8-byte x).
  int32_t position_step_cols;
  int64_t position_step_offset, position_wrap_offset;
  // 2-byte x's flat walk (kernels/read_tap_channels.cuh): a run's rows by their middle columns [cols.head, W -
  // cols.tail), middle_width = W - cols.head - cols.tail of them (0: none), apart from their border columns. A lane's
  // step of position_lanes positions among the middle columns: position_lanes % middle_width columns
  // (middle_step_cols), and in elements of x that step with position_lanes / middle_width rows (middle_step_offset),
  // and from column W - cols.tail of a row to column cols.head of the next (middle_wrap_offset); both modulo 2^32,
  // the walk's offsets within a run (which spans fewer than 2^31 elements) being 32-bit.
  int32_t middle_width, middle_step_cols;
  uint32_t middle_step_offset, middle_wrap_offset;
  // The channels walk row by row (float32, position_lanes 1, rows of at least kChannelRowsMinColumns): a lane takes
  // every column of each row in turn, rather than positions running on from row to row.
  bool channel_rows;
  // Middle rows by 16-byte loads of the memory they span, gaps between rows and all, where the gaps are narrow
  // (span_walk; row_stride divides by stride_h); else a load per element (row_elements divides by W). Either way a
  // run spans fewer than 2^31 elements.
  bool span_walk;
  // span_walk, every row 16-byte aligned and a whole number of 16-byte vectors, neither border wider than a vector
  bool whole_vector_rows;
  // The span walk's rows that are not whole vectors (and W > 1), where a row's span fits a warp's stage of
  // stage_bytes in dynamic shared memory: pieces of stage_rows rows through the stage (kernels/read_tap_rows.cuh
  // staged_walk). 0: no stage (stage_bytes 0 too).
  int32_t stage_rows, stage_bytes;
  // The middle rows' middle columns as a span's sum less the rest, for rows that follow each other with no gap
  // (stride_h == W) and W above cols.head + cols.tail. Without a stage: the middle rows summed whole, each row's border
  // columns loaded apart and taken off (kernels/read_tap_rows.cuh middle_by_span; plan::tap_middle_by_span), borders
  // of at most 2 columns a side (border_side 1 or 2); a run that meets a value that is not finite is read again by the
  // walks that only add. With a stage: each piece's staged span less its border rows and the middle rows' border
  // columns (staged_walk's kSpanSums; plan::tap_staged_span_sums); a piece whose difference is not finite takes the
  // column walk.
  bool middle_by_span;
  FastDivisor row_stride, row_elements;
  // The element walk's step of 32 elements: 32 % W columns and 32 / W rows (element_step_offset: 32 / W * stride_h).
  int32_t element_step_cols;
  int64_t element_step_offset;
  // 1 or 2, at least cols.head and cols.tail: the border columns' sums are kept in registers (a compare per
  // column); kVectorBorderSide likewise, on whole-vector rows alone; 0 (wider borders): in dynamic shared memory, a
  // value per lane and border column of each warp.
  int32_t border_side;
  bool evict_first;  // how x's middle is loaded (load_once): plan::evict_first_loads
  // The grid ahead writes nothing the reading launch touches: only that launch's block 0 waits for it, at its start
  // (launch.cuh, start_beside_previous_grid); the combining launch waits at its start as ever.
  bool beside_previous;
  void* partials;    // [B*C, chunks, 1 + cols.head + cols.tail] accumulation type
  // [B*C, rows.segments, cols.segments] accumulation type: sums of x over segment pairs, the middle row's by the
  // combine where no shares are asked (tap_group_combine_kernel; the cropped GEMM over cells reads them)
  void* grid;
  void* sums;        // [B*C, rows.taps, cols.taps] accumulation type, or null (the shares or the grid alone)
  // The cropped GEMM's shares (tap_shares_apply): shares[b*C + c, n] = sum over taps t of sums[b, c, t] *
  // weight[c, n - (first column of c's group), t] for the columns n of c's group, 0 for the others, by the
  // combining warps. Null: sums alone.
  const void* weight;  // [C, c_out / groups, kH, kW] contiguous, in `kind` (nn.ConvTranspose2d's grouped layout)
  int64_t groups;
  void* shares;        // [B*C, c_out] accumulation type
  int64_t c_out;
  int64_t read_blocks, combine_blocks;  // read_blocks: one warp per (plane, run), the hardware balancing them
  // Above 0 (shares only): tap_combine_kernel stages each plane's channel's weight in shared memory, column n's taps
  // at n * weight_pitch (odd: a warp's columns in distinct banks), the first plane's before its wait for the reader.
  int32_t weight_pitch;
  // Shares only: C_out / groups, and C / groups as a divisor (the combine's plane -> channel -> group, where B * C <
  // 2^31). channel_divisor divides by C where B * C < 2^31 (the combine's plane -> channel, every rows walk's unit's
  // plane -> batch).
  int64_t group_columns;
  FastDivisor channel_divisor, group_divisor;
  // The rows walks' units (B * C * chunks of them) below 2^31: a unit's plane and chunk by chunk_divisor, its batch
  // and channel by channel_divisor (kernels/read_tap_rows.cuh tap_run).
  bool unit_divisions;
  FastDivisor chunk_divisor;
  // Above 0 where the combine goes by groups of lanes (ops_cuda.cpp tap_combine_by_lane_groups: no shares, and the
  // cells asked or fewer than 32 lanes a plane by plan::tap_combine_lanes): the middle row's cells into `grid`, then
  // the taps where `sums` is set, by groups of group_lanes lanes a plane (a power of two, at most 32:
  // tap_group_combine_kernel), combine_blocks of them; for the cells alone none where there is no middle row. 0:
  // tap_combine_kernel, a warp a plane.
  int32_t group_lanes;
  // The groups' combine with the taps keeps the middle row's cells in registers, not in `grid`, each group's lanes
  // taking their own plane's taps (kernels/combine_taps.cuh combine_by_lane_groups): where nothing reads `grid` after
  // the combine (no cells asked: tap_sums_cuda's `cells` null) and plan::tap_combine_own_taps allows it.
  bool own_taps;
};

// tap_sums of x whose planes are small (H * W <= kSmallPlaneElements), for any strides, and where asked the sums of
// the plane's kept cells (pairs of row and column segments some tap keeps: fusedlse.h KeptCells): a thread per plane
// adds its elements into its kept cells in a fixed order, then each tap's sum of the cells it keeps. Element offsets
// and cells are the same for every plane, so the host works them out once.
constexpr int kSmallPlaneElements = 64;
// The staged kernel's planes (SmallPlaneTapArgs::staged_planes): at most this many elements, and kept segments a cut.
constexpr int kStagedPlaneElements = 1024;
constexpr int kMaxStagedSegments = 32;
// The fewest planes a staged tile holds: float64 planes of 120 elements and more fit 16 (48 KiB a block).
constexpr int kStagedPlanesLeast = 16;
struct SmallPlaneTapArgs {
  ScalarKind kind;
  // [B, C, H, W] in `kind`: plane (b, c) at b*stride_b + c*stride_c; with vector_planes, the 16-byte vector holding
  // x's first element, lead elements before it (ops_cuda.cpp small_plane_vectors), so every plane's vectors start there
  const void* x;
  int64_t batch, channels;
  int64_t stride_b, stride_c;
  // vector_planes: each plane loaded as the `elements` / (16 bytes) aligned vectors from the one holding its first
  // element; cell[k] is the cell of the element at position k of them (element (i, j) at lead + i * stride_h + j), -1
  // where no tap keeps it and at every position outside the plane. Else `elements` kept elements, element k at
  // offset[k] (i*stride_h + j*stride_w) in cell[k].
  bool vector_planes;
  int32_t elements;
  int64_t offset[kSmallPlaneElements];
  int8_t cell[kSmallPlaneElements];       // kept row segment * kept column segments + kept column segment
  int32_t row_segments, column_segments;  // the kept ones of each cut: cells = their product <= H * W
  int32_t taps_h, taps_w;                 // at most kMaxKernelTaps each
  // Tap (t, u) keeps the cells of kept row segments [row_first[t], row_end[t]) and kept column segments
  // [col_first[u], col_end[u]) (numbered among the kept ones).
  int8_t row_first[kMaxKernelTaps], row_end[kMaxKernelTaps], col_first[kMaxKernelTaps], col_end[kMaxKernelTaps];
  void* cells;  // [B*C, kept cells] accumulation type, or null
  void* sums;   // [B*C, taps_h, taps_w] accumulation type, or null (the cells alone)
  // Divisions by C (where B*C < 2^31: small_channels), by the taps and by the kept cells, a multiply and a shift each:
  // the kernel is bound by its instructions, not memory, on planes of a few elements.
  bool small_channels;
  FastDivisor channels_divisor, taps_divisor, cells_divisor;
  // A thread per plane, `threads` (a multiple of 32, at most kSmallPlaneMaxThreads) a block: as many as keep the
  // block's cells and taps within kSmallPlaneSharedBytes of shared memory.
  int32_t threads;
  // threads + 1: the values of one cell or tap of the block's planes, a row of shared memory each, start `pitch`
  // apart, so that a warp reading one plane's values hits distinct banks. A parameter rather than blockDim.x + 1:
  // one more live register made float64's kernel without the taps' store spill on sm_90.
  int32_t pitch;
  int64_t blocks;
  // staged_planes > 0: staged_plane_taps_kernel instead, a block per staged_planes consecutive planes (a power of
  // two, kStagedPlanesLeast to threads): they are copied into shared memory ([staged_planes][plane_pitch] values of
  // the accumulation type, plane_pitch odd) by loads whose neighbouring threads read neighbouring elements of a row
  // (channel_order false: a thread one element of every plane, H * W <= threads) or neighbouring channels
  // (channel_order: a thread one plane), then each kept cell is added over its rectangle there, a thread per (cell,
  // plane). Element (i, j) of a plane lies i * stride_h + j * stride_w past its first; H * W <= kStagedPlaneElements.
  int32_t staged_planes, plane_pitch, height, width;
  int64_t stride_h, stride_w;
  bool channel_order;
  // Kept segment r's inputs: rows [row_start[r], row_stop[r]), columns [col_start[q], col_stop[q]).
  int16_t row_start[kMaxStagedSegments], row_stop[kMaxStagedSegments];
  int16_t col_start[kMaxStagedSegments], col_stop[kMaxStagedSegments];
};
constexpr int kSmallPlaneMaxThreads = 256;
constexpr int kSmallPlaneSharedBytes = static_cast<int>(kDefaultSharedBytesPerBlock);  // no opting in

// The cropped GEMM's weight over kept cells (fusedlse.h cropped_gemm_operands): out[c, cell, n] = the sum of
// weight[c, n - (first column of c's group), t, u] over the taps (t, u) that keep the cell (0 for columns outside c's
// group). The taps that keep a segment are consecutive (a tap's first and last kept inputs only fall as the tap
// rises), so each kept segment carries a range of taps.
constexpr int kMaxCellSegments = 64;
struct CellWeightArgs {
  ScalarKind kind;     // of the weight
  const void* weight;  // [C_in, C_out / groups, kH, kW] contiguous
  int64_t in_channels, out_channels, groups;
  int64_t kernel_h, kernel_w;
  int32_t kept_rows, kept_cols;  // at most kMaxCellSegments each
  // Kept row segment r is kept by taps [row_tap_first[r], row_tap_end[r]) along H, column segment q by
  // [col_tap_first[q], col_tap_end[q]) along W.
  int32_t row_tap_first[kMaxCellSegments], row_tap_end[kMaxCellSegments];
  int32_t col_tap_first[kMaxCellSegments], col_tap_end[kMaxCellSegments];
  void* out;  // [C_in, kept_rows * kept_cols, C_out] accumulation type
  // A thread per pair of channels (c, n), its taps in registers (at most kCellWeightRegisterTaps of them), else a
  // thread per output value: cell_weight_threads.
  bool by_pairs;
  int64_t blocks;  // of kBlockThreads
};
// Kernels of up to this many taps may take a thread per pair of channels (CellWeightArgs::by_pairs).
constexpr int kCellWeightRegisterTaps = 32;
// The threads launch_cell_weight's kernel loops over.
inline int64_t cell_weight_threads(const CellWeightArgs& a) {
  const int64_t pairs = a.in_channels * a.out_channels;
  return a.by_pairs ? pairs : pairs * a.kept_rows * a.kept_cols;
}

// padding's tap sums of 16-bit x by one GEMM over a 0/1 keep matrix (ops_cuda.cpp keep_gemm_tap_sums): keep_matrix
// writes keep, 1 where tap (t, u) keeps element (i, j): rows [row_first[t], row_end[t]) by columns [col_first[u],
// col_end[u]) (fusedlse::Cut's kept inputs), and 0 in the columns past the taps that round its rows up to
// keep_pitch; cuBLAS multiplies x's planes by it into gemm_sums; keep_gemm_mend then copies each plane's tap sums into
// sums, and sums again, by adds alone over the elements each tap keeps, every plane whose sums hold a value that is
// not finite (an infinity or a NaN times a 0 of keep is a NaN in the taps that crop it, which the model never
// multiplies).
constexpr int kKeepGemmMaxTaps = 32;  // a lane per tap in keep_gemm_mend's warps
struct KeepGemmArgs {
  ScalarKind kind;  // of x and keep: kHalf or kBFloat16
  const void* x;    // [B, C, H, W]: element (b, c, i, j) at b*stride_b + c*stride_c + i*stride_h + j (rows contiguous)
  int64_t batch, channels, height, width;
  int64_t stride_b, stride_c, stride_h;
  int32_t kernel_h, kernel_w;  // kernel_h * kernel_w at most kKeepGemmMaxTaps, each at most kMaxKernelTaps
  int32_t row_first[kMaxKernelTaps], row_end[kMaxKernelTaps];
  int32_t col_first[kMaxKernelTaps], col_end[kMaxKernelTaps];
  int32_t keep_pitch;        // columns of keep and gemm_sums: the taps rounded up (tuning.h kKeepGemmColumnMultiple)
  void* keep;                // [H * W, keep_pitch] in `kind`: row i * W + j, column t * kernel_w + u
  const float* gemm_sums;    // [B * C, keep_pitch]: the GEMM's; sums itself where keep_pitch is the taps
  float* sums;               // [B * C, kernel_h * kernel_w]
};

// broadcast_taps' first step (tap_spread_kernel): each segment pair's value, the sum of taps[b, c, t, u] over the
// taps that keep it, cell-major so that broadcast_hw's cut (BroadcastArgs::cells) finds a segment pair's values of
// neighbouring channels side by side; broadcast_hw then writes every element of grad_x once.
struct TapBroadcastArgs {
  ScalarKind kind;     // of grad_x; taps and cells are its accumulation type
  const void* taps;    // [B*C, rows.taps, cols.taps] contiguous
  void* cells;         // [rows.segments * cols.segments, B*C] workspace: each segment pair's value
  int64_t batch, channels;
  TapCutGeometry rows, cols;
  int64_t blocks;
};

// Values between rows of W.sum as the kernels read it: C_out rounded up to a whole number of 16-byte pieces of the
// accumulation type, so that every row starts 16-byte aligned.
constexpr int64_t weight_sum_stride(int64_t c_out, int64_t acc_bytes) {
  return (c_out * acc_bytes + 15) / 16 * 16 / acc_bytes;
}

// sums[b, c] = sum over h, w of x[b, c, h, w] for any strides, in place: a group of `lanes` neighbouring lanes (1, 4, 8
// or 32) per plane, or per piece of a plane when there are too few planes to keep the device busy. Element
// e = h * width + w of a plane is at h * stride_h + w * stride_w; a plane whose rows follow each other comes as one row
// (height 1). With vec > 1 and height 1 the planes are such rows of contiguous elements, each starting 16-byte aligned,
// and the lanes load vec elements at a time: a plane's *units* are its elements, or its whole vectors (the last piece
// also adds the width % vec elements past them). With vec > 1 and height > 1 (stride_w 1) the units are the aligned
// 16-byte vectors from the one holding the plane's first element to the one holding its last, gaps and neighbours'
// elements left out by a mask: the host has checked that they all lie in x's storage. Piece k covers units
// [k * piece_units, (k + 1) * piece_units) and its sum goes to out[plane * pieces + k]; plane = b * C + c. Every
// element of a plane lies less than 2^30 elements from its first (and a plane has fewer than 2^30 units): offsets
// within a plane are 32-bit.
struct PlaneLanesArgs {
  ScalarKind kind;
  const void* x;  // [B, C, H, W] in `kind`: element (b, c, h, w) at b*stride_b + c*stride_c + h*stride_h + w*stride_w
  void* out;      // [B, C, pieces] contiguous, accumulation type ([B, C] where pieces_in_block)
  int64_t batch, channels, height, width;
  int64_t stride_b, stride_c, stride_h, stride_w;
  int lanes, vec;
  bool inner_vectors;  // vec > 1, height 1: planes that start anywhere in a 16-byte vector (Walk::kInnerVectors)
  int64_t pieces, piece_units;
  bool pieces_in_block;  // out is [B, C]: a block adds each plane's pieces (plan::PlaneLanesTiling)
  int64_t blocks;  // grid size: plan::plane_lanes_tiling's, at most what fits on the device at once
  bool beside_previous;  // the grid ahead writes nothing this one touches: wait for it at the end (launch.cuh)
  bool evict_first;      // x's loads (load_once, kernels/load.cuh): plan::evict_first_loads
};

// sums of runs of adjacent tiny planes, in place (the plane-lanes reader's run walk): run r holds run_planes planes of
// `plane` contiguous elements each, one after the other from element r * stride_run of x. A thread takes an item,
// item_planes planes of a run (fewer at its end), starting anywhere in a 16-byte vector; a block stages its items'
// sums in shared memory (kSplitThreads x item_planes, padded) and writes them out in order. Plane j of run r goes to
// out[r * run_planes + j].
struct PlaneRunsArgs {
  ScalarKind kind;
  const void* x;  // runs of planes in `kind`: element e of plane j of run r at r * stride_run + j * plane + e
  void* out;      // [runs, run_planes] contiguous, accumulation type
  int64_t runs, run_planes, plane, stride_run;
  int64_t item_planes, run_items;  // run_items = ceil(run_planes / item_planes); item_planes: plan::plane_runs_tiling
  // 0, or 1, 2, 4 or 8: planes of that many elements (16 bytes at most) that never straddle a 16-byte vector (x and
  // stride_run multiples of a plane's bytes). Then an item is kPlaneRunsItemVectors aligned vectors of a run, its
  // planes item_planes = kPlaneRunsItemVectors x (planes per vector) from the run's first vector's first slot
  // (run_items = ceil((planes per vector - 1 + run_planes) / item_planes)).
  int vector_plane;
  // The staged walk (vector_plane 0, plane x element bytes at most kStagedMaxPlaneBytes): an item is a tile of
  // item_planes planes of a run (a multiple of kSplitThreads; fewer at its end), copied into shared memory by the
  // whole block, each thread then adding every kSplitThreads-th plane.
  bool staged;
  int64_t blocks;  // grid size: at most what fits on the device at once
  bool beside_previous;  // the grid ahead writes nothing this one touches: wait for it at the end (launch.cuh)
  bool evict_first;      // x's loads (load_once, kernels/load.cuh): plan::evict_first_loads
};

// W.sum((2,3)) computed by a reader's launch before its items of x (kernels/load.cuh, fold_weight): out[i] = the sum
// of weight[i, :]. Ungrouped weights only (reader_weight_fold). Unused where weight is null.
struct WeightFold {
  const void* weight;  // [pairs, taps] contiguous (pairs = C_in x C_out, taps = kH x kW), x's dtype, or nullptr
  void* out;           // [pairs] contiguous, accumulation type
  int64_t pairs, taps;
};

// sums[b, c] = sum over pixels p of x[b, c, p] for channels-last x, in place: block items are (batch, chunk of
// `chunk_pixels` pixels). With C <= kSplitThreads a thread takes one (pixel, channel) of each step of
// rows_per_step = kSplitThreads / C pixels, and the block adds its rows per channel at the end of the chunk; with more
// channels (up to kSplitThreads * kChannelRowsWideLoads) a thread takes channels t, t + kSplitThreads, ... of every
// pixel (rows_per_step 1). Chunk k's sum of channel c goes to out[(b * C + c) * chunks + k].
struct ChannelRowsArgs {
  ScalarKind kind;
  const void* x;  // [B, C, pixels] in `kind`: element (b, c, p) at b*stride_b + p*stride_p + c
  void* out;      // [B, C, chunks] contiguous, accumulation type
  int64_t batch, channels, pixels;
  int64_t stride_b, stride_p;
  int64_t chunks, chunk_pixels;
  int rows_per_step;
  // The vector walk (channel_vectors_kernel) where stride_p == C: each batch's elements are one run of 16-byte
  // vectors from its first 16-byte boundary, and vectors period_vectors apart hold the same channels
  // (plan::channel_vectors_period). 0: the scalar walk.
  int64_t period_vectors, copies;
  // The pixel-vector walk (pixel_vectors_kernel) where true (plan::pixel_vectors_walk): stride_p == C, C and
  // stride_b whole 16-byte vectors, x 16-byte aligned; a thread per (batch, chunk, vector of a pixel), its chunk's
  // pixels' vectors summed in registers.
  bool pixel_vectors;
  bool pixel_chunks;  // the pixel-vector walk's planes in chunks (plan::pixel_vectors_chunked): its own kernel
  int64_t shared_bytes;  // the vector walk's dynamic shared memory
  int64_t blocks;  // grid size: at most what fits on the device at once
  bool evict_first;  // x's loads (load_once, kernels/load.cuh): plan::evict_first_loads
  WeightFold fold;  // W.sum, folded by the same launch (or none)
  // The grid ahead (the W.sum launch) writes nothing this one touches: wait for it at the end (launch.cuh); no fold.
  bool beside_previous;
};

// out[b] = 10 * logsumexp_n(scale * logits[b, n] + conv_bias[n] + bias[n * bias_stride]), torch.logsumexp's
// semantics for infinities and NaN.
// With channels > 1 the logits are shares to add first: logits[b, n] = the sum over c of shares [B, channels, C_out]
// (contiguous), a.slices (a power of two, at most kSplitThreads / min(C_out, kSplitThreads)) threads per column.
// With splits > 1 (channels 1) they are split-K's partial logits, added in split order: logits[b, n] = the sum over
// s of partials [splits, B, C_out] (contiguous).
struct BiasLseArgs {
  ScalarKind kind;        // of conv_bias, bias and out; logits are its accumulation type
  const void* logits;     // [splits, B, channels, C_out] contiguous, accumulation type; with row_sums: W.sum
                          // [channels, C_out], the same for every row
  const void* row_sums;   // [B, channels] contiguous, accumulation type: each share is row_sums[b, c] x W.sum[c, n]
                          // (the gemv epilogue); nullptr: the shares are in logits
  int64_t row_stride;     // elements from one row's logits to the next, c_out where they are contiguous (not
                          // used with row_sums or channels > 1)
  int64_t channels;       // 1: the logits themselves (without row_sums)
  int slices;             // channels > 1, or row_sums: threads per column, of the block's kSplitThreads or `threads`
  int threads;            // row_sums: the gemv block's threads (plan::gemv_lse_tiling); kSplitThreads where 0
  int64_t splits;         // 0 or 1: none
  const void* conv_bias;  // [C_out] contiguous, or nullptr
  const void* bias;       // C_out elements, element n at n * bias_stride (0: one value for every n)
  int64_t bias_stride;
  void* out;              // [B]
  int64_t batch, c_out;
  double scale;           // 1 / (H_out * W_out)
};

// One factor of cuBLAS's GEMM for 16-bit x (plan::bf16_pieces_apply) as bfloat16 pieces that tensor cores
// multiply exactly, so that one GEMM with float32 accumulation over three products gives a @ b to about 2^-16 of
// |a| @ |b|: each value v is high + low + a rest, high its truncation to bfloat16 (never rounded up to infinity), low
// the rounding of v - high. Slots of `depth` (the shared dimension rounded up to kBf16PiecesAlign; zero past it) side
// by side: the left factor's along its columns, [rows, kBf16PieceSlots * depth] as high | low | high, the right
// factor's along its rows, [kBf16PieceSlots * depth, dst_stride] as high ; high ; low (zero past cols: the GEMM
// runs over whole rows of 16 bytes), so that the GEMM adds high x high + low x high + high x low. A value that is not
// finite goes into the first slot alone (zeros in the others), so it meets the other factor's value once, as in a
// float32 GEMM: no inf x 0. The slots and the rounding (kBf16PieceSlots, kBf16PiecesAlign) are in tuning.h, where
// the planner counts them too.
struct Bf16PiecesArgs {
  const float* src;     // [rows, cols] contiguous
  void* dst;            // bfloat16; along_columns: [rows, kBf16PieceSlots * depth], else [kBf16PieceSlots * depth,
                        // dst_stride]
  int64_t rows, cols;   // of src
  int64_t depth;        // along_columns: cols, else rows, rounded up to kBf16PiecesAlign
  int64_t dst_stride;   // elements between dst's rows (along_columns: kBf16PieceSlots * depth, else cols rounded
                        // up to kBf16PiecesAlign)
  bool along_columns;   // the left factor (the sums); else the right one (W.sum)
};

// Rows of a grouped GEMM whose logsumexp came out NaN, done again group by group (regroup_nan_rows_kernel): the
// padding-0 GEMMs and the planned cropped GEMM multiply a dense block-diagonal weight, whose zeros times an infinite
// sum are NaN where the model keeps the infinity within its group. Each column n's logit is then the sum over its
// group's rows k of rows[b, k] x weight(k, n) alone.
struct GroupedRowsArgs {
  BiasLseArgs lse;  // out [B] in kind (read back, rewritten where NaN), the biases and scale; row_sums: the GEMM's
                    // rows [B, channels] (accumulation type, contiguous); logits, slices and splits unused
  // taps 0: [channels, C_out] contiguous, the accumulation type, zero between groups (the cropped GEMM's weight
  // rows). Otherwise the grouped weight [channels, C_out / groups, kH, kW] in kind at weight_strides, weight(k, n)
  // the sum of its taps (padding 0's W.sum).
  const void* weight;
  int64_t weight_strides[4];
  int taps_h, taps_w;
  int64_t group_rows, group_columns;  // channels / groups, C_out / groups
};

// Resident blocks of the fused kernel per multiprocessor, from the occupancy calculator.
int fused_blocks_per_sm(ScalarKind kind, XLayout layout);

cudaError_t launch_fused(const FusedArgs& args, cudaStream_t stream);
cudaError_t launch_broadcast_hw(const BroadcastArgs& args, cudaStream_t stream);
// tap_sums (two launches), and broadcast_taps' spread kernel (taps.cu).
cudaError_t launch_tap_sums(const TapSumsArgs& args, cudaStream_t stream);
cudaError_t launch_tap_spread(const TapBroadcastArgs& args, cudaStream_t stream);
cudaError_t launch_small_plane_taps(const SmallPlaneTapArgs& args, cudaStream_t stream);
// Dynamic shared memory of staged_plane_taps_kernel's block (SmallPlaneTapArgs::staged_planes > 0), for the host's
// choice of tile (ops_cuda.cpp staged_planes) and the launch alike: `tile` planes' first elements and a plane's
// `elements` offsets (int64_t each), the staged tile ([tile][plane_pitch]), then its kept cells' and taps' `values` a
// plane (rows of tile + 1), in accumulators of acc_bytes.
inline size_t staged_plane_shared_bytes(size_t tile, size_t elements, size_t plane_pitch, size_t values,
                                        size_t acc_bytes) {
  return (tile + elements) * sizeof(int64_t) + (tile * plane_pitch + values * (tile + 1)) * acc_bytes;
}
cudaError_t launch_cell_weight(const CellWeightArgs& args, cudaStream_t stream);
// keep_matrix_kernel and keep_gemm_mend_kernel (taps.cu) for KeepGemmArgs: blocks of kBlockThreads, each kernel
// looping over its work (a value of keep, a plane a warp) past the grid.
cudaError_t launch_keep_matrix(const KeepGemmArgs& args, int64_t blocks, cudaStream_t stream);
cudaError_t launch_keep_gemm_mend(const KeepGemmArgs& args, int64_t blocks, cudaStream_t stream);
// Resident blocks per multiprocessor of tap_sums' reading kernel (TapSumsArgs::border_side, channels_walk,
// channel_rows, stage_bytes, middle_by_span; at least 1).
int tap_sums_blocks_per_sm(ScalarKind kind, int border_side, int border_cols, bool channels_walk, bool channel_rows,
                           int32_t stage_bytes, bool middle_by_span);
// tap_grid_kernel's dynamic shared memory: the border sums (border_side 0), then a stage of stage_bytes a warp.
size_t tap_grid_shared_bytes(ScalarKind kind, int border_side, int border_cols, int32_t stage_bytes);
// tap_combine_kernel's dynamic shared memory for `args` (its cells, taps and staged weight a warp).
size_t tap_combine_shared_bytes(const TapSumsArgs& args);
// tap_combine_kernel's blocks that fit on an SM, for TapSumsArgs::border_side, whether it stores the tap sums, whether
// it stages the weight (weight_pitch > 0) and its dynamic shared memory.
int tap_combine_resident_per_sm(ScalarKind kind, int border_side, bool tap_sums, bool staged_weight,
                                size_t shared_bytes);
// tap_group_combine_kernel's blocks that fit on an SM, for TapSumsArgs::border_side, whether it makes the taps and
// whether each group takes its own plane's (TapSumsArgs::own_taps).
int tap_group_combine_resident_per_sm(ScalarKind kind, int border_side, bool taps, bool own_taps);
// Runs gemm_lse, and its merge when args.column_runs > 1; with args.k_splits > 1 only the partial logits (the caller
// runs bias_lse over them).
cudaError_t launch_gemm_lse(const GemmLseArgs& args, cudaStream_t stream);
// The same out[b] by the rows epilogue (plan::rows_lse_applies must hold): `lanes` lanes per row and shared_bytes of
// dynamic shared memory (plan::rows_lse_tiling's), at most max_blocks blocks; reads every field but partial_lse,
// column_runs and tile.
cudaError_t launch_rows_lse(const GemmLseArgs& args, int lanes, int64_t shared_bytes, int64_t max_blocks,
                            cudaStream_t stream);
// Resident rows-epilogue blocks per multiprocessor (at least 1) with `lanes` lanes per row and shared_bytes of shared
// memory.
int rows_lse_blocks_per_sm(ScalarKind kind, int lanes, int64_t shared_bytes);
// The same out[b] by the narrow epilogue (plan::narrow_lse_applies must hold): W.sum staged for `columns` columns
// (4, 8, 16 or 32), `lanes` (8 or 32) lanes per group of rows, shared_bytes of dynamic shared memory
// (plan::narrow_lse_tiling's), at most max_blocks blocks; reads every field but partial_lse, column_runs and tile.
// With plane_rows > 0, the kernel that reads x's planes itself (`sums` is x; narrow_source says which): planes of
// several elements in one channel range (k_splits 1), one-element planes in any.
// narrow_lse_blocks_per_sm must have been called for these sizes on the current device first.
cudaError_t launch_narrow_lse(const GemmLseArgs& args, int columns, int lanes, int64_t shared_bytes,
                              int64_t max_blocks, cudaStream_t stream);
// The narrow epilogue's source of rows for `args` (plane_rows and plane_width): what launch_narrow_lse runs.
NarrowSource narrow_source(const GemmLseArgs& args);
// Resident narrow-epilogue blocks per multiprocessor (at least 1) for those sizes, of the kernel for `source`; lets the
// kernel take up to kNarrowLseMaxSharedBytes of dynamic shared memory on the current device.
int narrow_lse_blocks_per_sm(ScalarKind kind, int columns, int lanes, NarrowSource source, int64_t shared_bytes);
cudaError_t launch_plane_lanes(const PlaneLanesArgs& args, cudaStream_t stream);
// Resident blocks per multiprocessor of the plane-lanes kernel that `args` (its kind, lanes, vec, height) selects.
int plane_lanes_blocks_per_sm(const PlaneLanesArgs& args);
cudaError_t launch_plane_runs(const PlaneRunsArgs& args, cudaStream_t stream);
// Resident blocks per multiprocessor of the run walk's kernel for `args`'s kind.
int plane_runs_blocks_per_sm(const PlaneRunsArgs& args);
cudaError_t launch_channel_rows(const ChannelRowsArgs& args, cudaStream_t stream);
// Resident blocks per multiprocessor of the channel-rows kernel that `args` (its kind, rows_per_step) selects.
int channel_rows_blocks_per_sm(const ChannelRowsArgs& args);
cudaError_t launch_bias_lse(const BiasLseArgs& args, int64_t max_blocks, cudaStream_t stream);
cudaError_t launch_regroup_nan_rows(const GroupedRowsArgs& args, int64_t max_blocks, cudaStream_t stream);
// Bf16PiecesArgs' pieces, in at most max_blocks blocks, after the grid ahead in the stream (launch.cuh).
cudaError_t launch_bf16_pieces(const Bf16PiecesArgs& args, int64_t max_blocks, cudaStream_t stream);


}  // namespace fusedlse
