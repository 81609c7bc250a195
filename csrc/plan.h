// The forward's planner: a problem and a device's properties -> the strategy that computes it, the reader that
// walks x, and the time each strategy is predicted to take. Plain C++ (no torch, no CUDA), so that the unit tests
// run it on CPU with made-up devices (tests/test_plan.py, through the `plan` op), and every constant of its cost
// model sits in plan.cpp beside the measurement it comes from.
#pragma once

#include <cstdint>
#include <string>

namespace fusedlse {
namespace plan {

// a / b rounded up (b > 0).
constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// How x's elements sit in memory.
//  kPlanes:       every (b, c) plane contiguous; any batch and channel strides.
//  kChannelsLast: channels adjacent, (H, W) flattening to one stride.
//  kStridedRows:  W contiguous but rows strided (a slice of H or W), planes not contiguous.
//  kOther:        neither W nor C contiguous.
enum class Layout { kPlanes = 0, kChannelsLast = 1, kStridedRows = 2, kOther = 3 };

struct Problem {
  int64_t batch, in_channels, out_channels, height, width;
  int64_t element_bytes;  // of x: 2, 4 or 8 (8: float64, accumulated and multiplied in float64)
  Layout layout;
  int64_t kernel_area = 1;  // kH * kW: the weight's values per (C_in, C_out) pair
  // Tiny contiguous planes of 16- or 32-bit elements that follow each other in memory (each batch's channels, or
  // every plane of x), of a size tiny_plane_walk gives to a run walk over 16-byte vectors rather than to a lane per
  // plane (cuda/split.cu, PlaneRunsArgs; the host decides).
  bool plane_runs = false;
  // kPlanes: every plane starts on a 16-byte boundary (x's first element, and its batch and channel strides); false
  // in other layouts. The fused launch reads float32 planes as fast as the plane-lanes reader only where they do.
  bool planes_aligned = true;
  // kChannelsLast: each batch's pixels follow each other (pixel stride C, not a slice of wider pixels), so the
  // channel-rows reader may read it by 16-byte vectors (channel_vectors_apply); false in other layouts.
  bool pixels_follow = true;
  // kChannelsLast: besides, each pixel whole 16-byte vectors from a 16-byte boundary (x's first element, its batch
  // stride and C x element_bytes), which the channel-rows reader's pixel-vector walk needs (pixel_vectors_walk).
  bool pixel_vectors = false;
  // Whether the tiled epilogue may read x itself (Reader::kInEpilogue, in_epilogue_applies); false where no reader
  // would run anyway (the cropped GEMM's rows, sums already: ops_cuda.cpp forward_cropped_cuda). One-element planes
  // of the accumulation type and a 1 x 1 kernel then cost the split strategy its epilogue alone.
  bool x_in_epilogue = true;
  // The output's element bytes where they are not element_bytes: the cropped GEMM of 16-bit x runs on rows of float32
  // sums, its output 16-bit, so cuBLAS's GEMM over bfloat16 pieces applies (bf16_pieces_apply). 0: element_bytes.
  int64_t output_bytes = 0;
};

// What the planner needs of a device (read from cudaDeviceGetAttribute on the CUDA path).
struct DeviceProps {
  int64_t multiprocessors;
  int64_t l2_bytes;
  int64_t shared_bytes_per_sm;
  int64_t warps_per_sm;
  double read_gbps;    // DRAM bandwidth: 2 x memory clock x bus width
  double fp32_gflops;  // FMA peak without tensor cores: 2 x 128 lanes x SMs x clock
  // Dense bfloat16 tensor-core peak with float32 accumulation: the compute capability's flops per clock of a
  // multiprocessor x SMs x clock (0 where not known: no GEMM over bfloat16 pieces, bf16_pieces_apply).
  double bf16_gflops = 0;
};

// kFused: one launch reads x and runs the epilogue as batch tiles complete (cuda/forward.cu).
// kSplit: the reader writes sums [B, C_in]; W.sum((2,3)) once; then `Epilogue`.
enum class Strategy { kFused = 0, kSplit = 1 };
// The split strategy's GEMM + biases + logsumexp.
//  kTiledLse:  one kernel (cuda/gemm_lse.cu): a register-tiled GEMM whose column tiles go straight into each row's
//              logsumexp, so no [B, C_out] logits are written; FMAs in the accumulation type (SIMT, or the
//              float64 tensor cores' for float64 of more than 32 columns), or for 16-bit x of more than 32 columns
//              three products of bfloat16 pieces on the tensor cores (bf16_tile_applies).
//  kCublasLse: cuBLAS's GEMM (float32-exact: 3xTF32 when TF32 is allowed) writes the logits, then one kernel adds
//              the biases and takes each row's logsumexp (cuda/split.cu): for GEMMs where cuBLAS's speed (float64
//              tensor cores, tuned SIMT) repays the logits' round trip.
//  kRowsLse:   one kernel (cuda/gemm_lse.cu): a group of lanes per row computes the row's logits, a chunk of
//              columns at a time, from W.sum and the sums staged in shared memory, and takes their logsumexp; for few
//              channels (rows_lse_applies), where the tiled kernel's tiles spend more on staging and bookkeeping than
//              on FMAs.
//  kNarrowLse: one kernel (cuda/gemm_lse.cu): a group of lanes per few rows splits the rows' channels, each lane
//              holding every logit of its rows; for few columns (narrow_lse_applies) and any number of channels,
//              where the tiled kernel's tiles and cuBLAS's pay for columns that are not there.
//  kGemvLse:   one kernel (cuda/split.cu, bias_lse's shares kernel): a block per row, its threads across columns and
//              slices of the channels, each logit the row's sums dotted with a column of W.sum read from L2; for
//              few rows, where one launch with a round trip or two to L2 beats the tiled kernel's chains of depth
//              steps and its merge, and every block's read of W.sum costs little.
enum class Epilogue { kTiledLse = 0, kCublasLse = 1, kRowsLse = 2, kNarrowLse = 3, kGemvLse = 4 };

// Whether the rows epilogue takes a GEMM of C_in x C_out in accumulation type of `acc_bytes`: what it stages fits a
// block's shared memory without opting in (cuda/tuning.h, kRowsLseMax*).
bool rows_lse_applies(int64_t in_channels, int64_t out_channels, int64_t acc_bytes);
// Whether the narrow epilogue takes a GEMM of C_in x C_out in accumulation type of `acc_bytes`: at most
// kNarrowLseMaxColumns columns (cuda/tuning.h); any C_in, in channel ranges where its transposed W.sum does not fit
// kNarrowLseMaxSharedBytes (narrow_lse_tiling), as long as the ranges fit a grid's second dimension.
bool narrow_lse_applies(int64_t in_channels, int64_t out_channels, int64_t acc_bytes);
// Threads per column in bias_lse's block per row of `threads` threads (the shares and gemv kernels): as many as the
// columns leave over (a power of two), within the channels.
int channel_slices(int64_t channels, int64_t out_channels, int64_t threads);
// The gemv epilogue's block per row (cuda/split.cu: sums [channels] x W.sum [channels, C_out] in the accumulation type
// of acc_bytes): kSplitThreads threads, or kGemvWideThreads (cuda/tuning.h) where they take fewer trips of loads (a
// trip: each thread's shares_lse_loads channels of a column in flight, for each pass over the columns); its channel
// slices (channel_slices) and trips.
struct GemvLseTiling {
  int64_t threads;
  int slices;
  int64_t trips;
};
GemvLseTiling gemv_lse_tiling(int64_t channels, int64_t out_channels, int64_t acc_bytes);
// Who reads x.
//  kPlanes:         fusedlse's reader of contiguous planes and channels-last x, in place (cuda/forward.cu);
//  kCopyThenPlanes: the same after a contiguous copy of x (a layout it does not walk);
//  kPlaneLanes:     a group of 1 to 32 lanes per plane (or piece of one), any strides, in place (cuda/split.cu):
//                   tiny planes of any layout (channels-last ones only of wide enough pixels and planes), and planes
//                   whose W is contiguous (contiguous planes, strided rows);
//  kTorchSum:       torch's own x.sum((2, 3)), in place: channels-last and other layouts of larger planes, and tiny
//                   channels-last planes of few bytes.
//  kChannelRows:    channels-last x read a pixel (a row of C channels) at a time, in place (cuda/split.cu), or by
//                   16-byte vectors where channel_vectors_apply: planes of kChannelRowsMinPixels pixels or more, and
//                   up to kChannelRowsMaxChannels channels (kChannelRowsFloat64MaxChannels in float64) or more where
//                   the vector walk applies (plan.cpp); torch's reduction for other layouts, where forced.
//  kInEpilogue:     no reader: x's planes of one element, of the accumulation type, are the sums, and the tiled
//                   epilogue loads them where they lie (x's batch and channel strides), saving each into the
//                   forward's sums as it goes; its GEMM runs while x is read. Or float64 planes of a few elements
//                   that the tensor-core tile sums itself, its rows' planes before its GEMM (tile_sums_planes). Or,
//                   with the narrow epilogue, tiny strided planes of any dtype that its lanes sum where they lie,
//                   or 16-bit x's one-element planes that they load as sums, instead of loading sums
//                   (narrow_reads_planes): no sums written and read back.
enum class Reader {
  kPlanes = 0,
  kCopyThenPlanes = 1,
  kPlaneLanes = 2,
  kTorchSum = 3,
  kChannelRows = 4,
  kInEpilogue = 5
};

struct Plan {
  Strategy strategy;
  Reader reader;
  double predicted_us;  // of the chosen strategy
  double fused_us;      // the fused launch's prediction (its reader: kPlanes, or kCopyThenPlanes)
  double split_us;      // the split strategy's, with `split_reader`
  Reader split_reader;
  Epilogue epilogue;    // of the split strategy (also reported for kFused: what a split would run)
  double tiled_us;      // the GEMM + logsumexp part of split_us with each epilogue
  double cublas_us;
  int64_t tiled_k_splits;  // the tiled epilogue's channel ranges (GemmTiling::k_splits; 1: not split)
  int tiled_tile;          // the tiled epilogue's tile (GemmTiling::tile: an index into cuda/tuning.h's kGemmTiles)
  int64_t cublas_k_splits;  // cuBLAS's epilogue's channel slices (cublas_k_splits; 1: not split)
  double rows_us;       // infinity where the rows epilogue does not apply
  double narrow_us;     // infinity where the narrow epilogue does not apply
  int64_t narrow_k_splits;  // the narrow epilogue's channel ranges (NarrowLseTiling::k_splits; 1: not split)
  double gemv_us;       // the gemv epilogue takes any GEMM
  bool evict_first;     // how the readers load x: evict_first_loads
  bool weight_is_its_sum;  // the split strategy's W.sum is the weight itself, where it is contiguous
  std::string why;
};
// Whether the tiled epilogue can read x in place (Reader::kInEpilogue), where the problem allows it
// (Problem::x_in_epilogue): planes of one element of the accumulation type (float32, float64), which it loads as its
// sums, or tile_sums_planes.
bool in_epilogue_applies(const Problem& problem, const DeviceProps& device);
// Whether the narrow epilogue can sum x's planes itself (Reader::kInEpilogue with Epilogue::kNarrowLse), where the
// problem allows it (Problem::x_in_epilogue): planes of 2 to kNarrowPlanesMaxElements elements in any dtype, of
// strided rows or another layout (kStridedRows, kOther) and a GEMM whose channels fit one range (narrow_lse_tiling's
// k_splits 1), or planes of one element of 16-bit x in any layout, over channel ranges too; narrow_lse_applies to the
// GEMM. choose() weighs that epilogue reading x against the narrow epilogue with its reader and, for one-element
// planes, against the rows epilogue with its reader (not against the tiled epilogue: docs/limits.md §110).
bool narrow_reads_planes(const Problem& problem, const DeviceProps& device);
// Whether the tensor-core tile can sum x's planes itself before its GEMM (cuda/gemm_lse.cu, sum_tile_planes): float64
// planes of 2 to kTinyPlaneElements elements whose rows are contiguous (layouts kPlanes and kStridedRows) and 8 to
// kTilePlanesMaxWidth wide, C_in of at most kTilePlanesMaxChannels (cuda/tuning.h), and a GEMM that gemm_tiling gives
// to that tile (float64, more than 32 columns) in one column run without split-K.
bool tile_sums_planes(const Problem& problem, const DeviceProps& device);

// Whether the split strategy takes the weight itself as W.sum((2, 3)), with no pass over it: a 1 x 1 kernel whose
// values are already of the accumulation type (float32, float64). The host also asks for a contiguous weight, the
// usual case, which the problem does not describe.
bool weight_is_its_sum(const Problem& problem);

// Whether fusedlse's readers load a tensor of `bytes` evict-first (ld.global.cs) rather than cached (ld.global.nc):
// up to kEvictFirstMaxL2Share times the L2 (cuda/tuning.h). Evict-first reads of a small tensor leave the L2's
// dirty lines (what ran before) in place instead of writing them back; large ones read faster cached.
bool evict_first_loads(int64_t bytes, const DeviceProps& device);

// Threads that fit on the device at once: what the readers' and the rows and narrow epilogues' tilings size their
// grids by.
inline int64_t resident_threads(const DeviceProps& device) { return device.multiprocessors * device.warps_per_sm * 32; }

Plan choose(const Problem& problem, const DeviceProps& device);

// The tiled GEMM + logsumexp's launch (cuda/gemm_lse.cu) for B x C_out outputs over C_in channels: a tile of
// kGemmTiles (cuda/tuning.h), the runs C_out's column tiles are cut into (blocks along C_out), and what the cost
// model needs of it.
struct GemmTiling {
  int tile;
  int64_t column_runs;
  int64_t blocks;
  int64_t steps_per_block;  // column tiles per run x depth steps per column tile (per channel range when split)
  // Split-K (cuda/tuning.h, kGemmMaxSplits): the channels cut into k_splits ranges of split_channels (whole depth
  // steps), a block per column tile (column_runs = C_out's column tiles) and range; 1: no split.
  int64_t k_splits = 1;
  int64_t split_channels = 0;
};
// bf16_tile: the GEMM may take the bfloat16 tensor-core tile (kBf16MmaTile: bf16_tile_applies), which it does where it
// would take a wide tile, its tiles fill the device and two blocks' pieces of all C_in fit a multiprocessor
// (cuda/tuning.h, bf16_mma_fits); that tile is never split along C_in.
GemmTiling gemm_tiling(int64_t batch, int64_t in_channels, int64_t out_channels, int64_t acc_bytes,
                       int64_t multiprocessors, int64_t shared_bytes_per_sm, bool bf16_tile = false);

// Whether products over bfloat16 pieces of the float32 factors serve an output of `output_bytes` on `device`: 16-bit
// output, whose own rounding is far above the pieces' error, and tensor cores that run them at
// kBf16PiecesMinTensorRate times the FMA rate or more. The tiled epilogue then may take the bfloat16 tensor-core tile
// (gemm_tiling); cuBLAS's epilogue takes them by bf16_pieces_apply's rule.
bool bf16_tile_applies(int64_t output_bytes, const DeviceProps& device);

// The channel slices cuBLAS's epilogue cuts a B x C_in x C_out GEMM into (split-K: one strided batched GEMM writes each
// slice's partial logits, which bias_lse adds in slice order; 1: one GEMM): where its output tiles leave
// multiprocessors idle and rows are narrower than kCublasSplitMaxColumns, the largest divisor of C_in up to
// kCublasSplitBlocksPerSm blocks a multiprocessor that leaves every slice kCublasSplitMinChannels channels or more.
int64_t cublas_k_splits(int64_t batch, int64_t in_channels, int64_t out_channels, int64_t multiprocessors);

// Whether cuBLAS's epilogue runs the GEMM of `rows` x `channels` sums by W.sum [channels, c_out] on bfloat16 tensor
// cores over pieces of its float32 factors (cuda/ops_cuda.cpp, bf16_pieces_mm_out): x of 2-byte elements (16-bit
// output, whose own rounding is far above the pieces' error), the GEMM's sides as cuda/tuning.h's kBf16PiecesMinSide
// rule says, and a device whose tensor cores run them at kBf16PiecesMinTensorRate times its FMA rate or more. The
// host takes them only where the GEMM is one channel slice (cublas_k_splits 1).
bool bf16_pieces_apply(int64_t element_bytes, int64_t rows, int64_t channels, int64_t c_out, const DeviceProps& device);

// The plane-lanes reader's launch (cuda/split.cu) over `planes` planes of `units` loads each (elements, or 16-byte
// vectors): lanes per plane (the most that leave each at least `units_per_lane` of a plane's loads: cuda/tuning.h,
// kPlaneLanesUnitsPerLane), the pieces each plane is cut into (a second pass adds them when more than one), and
// blocks of kSplitThreads for a device of `resident_threads` (multiprocessors x resident threads per SM).
struct PlaneLanesTiling {
  int lanes;
  int64_t pieces;
  int64_t piece_units;
  // A block for every kSplitThreads / lanes items, each block one turn of its groups: blocks that start as others
  // end read more of x at once than a persistent grid's turns (docs/limits.md section 93). `persistent` (only where
  // forced: force_plane_lanes_persistent): at most the resident blocks, each taking turns over the items, which the
  // launch clamps further to the blocks the kernel's registers let reside.
  int64_t blocks;
  bool persistent;
  // A plane's pieces (a power of two, at most a block's groups) are neighbouring groups of one block, which adds them
  // up itself: no partial sums, no second launch. Otherwise a launch adds the [planes, pieces] partial sums.
  bool pieces_in_block;
};
PlaneLanesTiling plane_lanes_tiling(int64_t planes, int64_t units, int64_t resident_threads, int64_t units_per_lane);
// `t` (plane_lanes_tiling's, for `planes` planes of `units` loads) where a plane's pieces share a block and its blocks
// pass `kernel_blocks`, those its kernel holds at once (its registers decide): half the pieces a plane, again until
// the blocks make one wave or a plane is one group's. Unchanged where pieces or a persistent grid are forced.
PlaneLanesTiling fit_pieces_to_wave(PlaneLanesTiling t, int64_t planes, int64_t units, int64_t kernel_blocks);
// For measurements and tests: every later plane_lanes_tiling takes a persistent grid (1) or a block a turn (0); -1
// leaves it to the rule (a block a turn). Not for production code.
void force_plane_lanes_persistent(int persistent);
// For measurements and tests: every later plane_lanes_tiling cuts each plane into this many pieces (at most one per
// lane's load: units / lanes), then as the rule cuts its own (in a block, rounded down to a power of two, where they
// are at most its groups; otherwise a second launch adds them); 0 leaves the count to the rule. Not for production
// code.
void force_plane_lanes_pieces(int64_t pieces);

// How the plane-lanes reader walks tiny contiguous planes that follow each other in runs (cuda/ops_cuda.cpp,
// plane_runs_of): a lane per plane (kLanes: its scalar walk), the run walk adding each element to its plane's sum
// (kRuns, elements of 2 or 4 bytes), the run walk summing planes that never straddle a 16-byte vector whole per
// vector (kVectorPlanes), or tiles of a block's planes staged in shared memory by whole warps' copies, a thread per
// plane adding its elements there (kStaged, planes of at most kStagedMaxPlaneBytes in runs of at least
// kStagedMinRunPlanes).
enum class TinyPlaneWalk { kLanes, kRuns, kVectorPlanes, kStaged };

// The walk for such planes of `plane` elements of `element_bytes` in runs of `run_planes` planes; tiles_vectors: no
// plane straddles a 16-byte vector. The staged walk where it applies, the run holds at least
// kStagedChosenMinRunBytes and it was measured faster than the others (cuda/tuning.h), else whole planes per vector
// where they tile, else the run walk where it was measured faster than the lanes, else the lanes. force_walk's
// choice where one is forced and applies; where it does not, kVectorPlanes and kStaged fall back to kRuns, and kRuns
// to kLanes (8-byte elements).
TinyPlaneWalk tiny_plane_walk(int64_t plane, int64_t element_bytes, int64_t run_planes, bool tiles_vectors);

// The run walk's launch (cuda/split.cu, PlaneRunsArgs) by `walk` (kRuns, kVectorPlanes or kStaged) over `runs` runs
// of `run_planes` adjacent planes of `plane` elements of `element_bytes`: planes per item (at most a run), items per
// run, and blocks of kSplitThreads for a device of `resident_threads`. kVectorPlanes: items of
// kPlaneRunsItemVectors whole vectors; kStaged: an item is a tile of up to kStagedTileBytes, a multiple of
// kSplitThreads planes (fewer at a run's end).
struct PlaneRunsTiling {
  int64_t item_planes;
  int64_t run_items;
  int64_t blocks;
};
PlaneRunsTiling plane_runs_tiling(int64_t runs, int64_t run_planes, int64_t plane, int64_t element_bytes,
                                  TinyPlaneWalk walk, int64_t resident_threads);

// The channel-rows reader's launch (cuda/split.cu) over `batch` batches of `pixels` pixels of `channels` channels:
// pixels per step of a block (kSplitThreads / C for C <= kSplitThreads, else 1), the chunks each batch's pixels are
// cut into (a second pass adds them when more than one), and blocks, at most `resident_blocks`.
struct ChannelRowsTiling {
  int rows_per_step;
  int64_t chunks;
  int64_t chunk_pixels;
  int64_t blocks;
};
ChannelRowsTiling channel_rows_tiling(int64_t batch, int64_t channels, int64_t pixels, int64_t resident_blocks);

// The channel-rows reader's vector walk (cuda/split.cu) where x's pixels follow each other (pixel stride C): every
// load a 16-byte vector of `vector_elements` elements. Counted from a batch's first 16-byte boundary, vectors
// `period_vectors` apart (C / gcd(C, vector_elements)) hold the same channels; a block keeps `copies` slots of
// accumulators per vector of a period (as many copies as leave a slot per thread at most, within
// kChannelVectorsMaxSharedBytes; one where a period has more vectors than the block has threads): `shared_bytes` of
// them. period_vectors 0: one copy's accumulators do not fit.
struct ChannelVectorsPeriod {
  int64_t period_vectors;
  int64_t copies;
  int64_t shared_bytes;
};
ChannelVectorsPeriod channel_vectors_period(int64_t channels, int64_t vector_elements, int64_t acc_bytes);

// Whether the channel-rows reader takes p's x by its vector walk: channels-last pixels that follow each other, 16- or
// 32-bit elements, at least kChannelVectorsMinChannels channels (more than the scalar walk is chosen for) whose period
// fits a block (channel_vectors_period), and batches of enough vectors for every slot's kChannelVectorsMinLoads
// loads.
bool channel_vectors_apply(const Problem& p);
// The most blocks its chunks make (channel_vectors_tiling: B x the chunks of a batch's pixels that hold every slot's
// kChannelVectorsMinLoads loads), 0 where not channel_vectors_apply. The planner gives the walk x of
// kChannelVectorsMinBlocks blocks or more; run on fewer (a forced plan) it takes them.
int64_t channel_vectors_blocks(const Problem& p);

// Whether the channel-rows reader takes p's x by its pixel-vector walk (a thread per batch, chunk of pixels and
// 16-byte vector of a pixel, the chunk's pixels summed in registers): Problem::pixel_vectors of 16- or 32-bit
// elements, on planes of 2 to kPixelVectorsMaxPixels pixels of kPixelVectorsMinPixelBytes or more, or of at most
// kPixelVectorsAnyPixelsMaxPlane, with kPixelVectorsMinItems threads' work or more; or of float64 elements, more
// channels than the scalar walk takes, pixels of whole 128-byte lines (C a multiple of 16) and planes of at least
// kChannelRowsMinPixels pixels.
bool pixel_vectors_walk(const Problem& p);

// Its chunks and blocks, as channel_rows_tiling's: each of a block's `slots` slots takes at least
// kChannelVectorsMinLoads vectors of a chunk (rows_per_step 1).
ChannelRowsTiling channel_vectors_tiling(int64_t batch, int64_t channels, int64_t pixels, int64_t vector_elements,
                                         int64_t slots, int64_t resident_blocks);

// The pixel-vector walk's (pixel_vectors_walk): a thread per batch, chunk and 16-byte vector of `vector_elements`
// elements of a pixel, and blocks of kSplitThreads for every such item, at most `resident_blocks`. Planes of at most
// kPixelVectorsMaxPixels are one chunk; larger ones are cut into chunks of at least kPixelVectorsMinChunkPixels pixels
// until there is an item for every resident thread.
ChannelRowsTiling pixel_vectors_tiling(int64_t batch, int64_t channels, int64_t pixels, int64_t vector_elements,
                                       int64_t resident_blocks);
// Whether pixel_vectors_tiling may cut planes of `pixels` pixels into chunks (then the walk's chunked kernel runs).
bool pixel_vectors_chunked(int64_t pixels);

// The rows epilogue's launch (cuda/gemm_lse.cu) for B rows: lanes per row (1 to 32, powers of two: more while the
// rows' lanes fill less than kRowsLseFillShare of the resident threads and each lane still has a chunk of columns),
// and the dynamic shared memory of a block (W.sum, the biases, its rows' sums).
struct RowsLseTiling {
  int lanes;
  int64_t shared_bytes;
};
RowsLseTiling rows_lse_tiling(int64_t batch, int64_t in_channels, int64_t out_channels, int64_t acc_bytes,
                              int64_t resident_threads);

// The narrow epilogue's launch (cuda/gemm_lse.cu) for B rows: columns W.sum is staged for (C_out rounded up to 4,
// 8, 16 or 32), lanes per group of rows (8, or 32 where groups of 8 would fill less than kNarrowLseFillShare of the
// resident threads), its channel ranges (split-K: the fewest equal ranges whose W.sum, transposed, and the biases'
// sum fit kNarrowLseMaxSharedBytes; 1 where all of C_in does), and a block's dynamic shared memory (that of a range).
struct NarrowLseTiling {
  int columns;
  int lanes;
  int64_t k_splits, split_channels;  // split_channels: C_in where k_splits is 1
  int64_t shared_bytes;
};
NarrowLseTiling narrow_lse_tiling(int64_t batch, int64_t in_channels, int64_t out_channels, int64_t acc_bytes,
                                  int64_t resident_threads);

// The reader for sums alone (the sum_hw op, and the split strategy's first step).
Reader reader_for_sums(const Problem& problem);

// The plan as one JSON object: strategy, reader, predictions and the inputs they came from.
std::string to_json(const Plan& plan, const Problem& problem, const DeviceProps& device);

// For measurements (bench/strategies.py): every later choose() returns this strategy (and reader and epilogue, for
// kSplit) instead of the cost model's; -1 leaves that choice to the model. Not for production code.
void force(int strategy, int reader, int epilogue);

// For measurements and tests: every later tiny_plane_walk returns this walk (a TinyPlaneWalk) where it applies, its
// fallback where not (tiny_plane_walk); -1 leaves it to the table. Not for production code.
void force_walk(int walk);

// The slices of C that padding's channels walk (cuda/taps.cu, tap sums of channels-last x) gives a warp each, each of
// ceil(C / slices) channel lanes, the lanes left over (a power of two of groups) walking further positions: the count
// with the fewest warp loads per pixel (slices / position groups) among those whose groups load at least
// kChannelWalkMinGroupBytes of neighbouring channels (or all C), the fewest slices on a tie; or as
// force_channel_slices says (clamped to [ceil(C / 32), C]).
int64_t channel_walk_slices(int64_t channels, int64_t element_bytes);
// For measurements and tests: every later channel_walk_slices returns this many slices (clamped); 0 leaves it to the
// rule. Not for production code.
void force_channel_slices(int64_t slices);
// The positions a slice of `lanes` channel lanes walks at once (the channels walk's position lanes): the most, a power
// of two, whose lanes fit a warp.
int32_t channel_walk_position_groups(int64_t lanes);
// Whether the channels walk of x with `channels` channels and rows of `width` elements of `element_bytes` each walks
// row by row (cuda/taps.cu kChannelRowsWalk): float32 where channel_walk_slices leaves one position lane (a lane a
// channel) and rows of at least kChannelRowsMinColumns (tuning.h, with the measurements); else flat.
bool channel_walk_by_rows(int64_t channels, int64_t width, int64_t element_bytes);

// The runs of rows that padding's tap reader (cuda/taps.cu) cuts each of `units` planes (or slices of channels) of
// `height` rows into, a warp each: at most kTapWarpsPerResidentWarp runs per warp of `resident_warps`, none shorter
// than kTapMinRunBytes of x (`row_bytes` a row of a unit) where the unit is longer, and from runs of
// kTapLongRunBytes as many more as the waves of resident warps make cheapest (tuning.h); 1 to `height`. Or with
// force_tap_min_run_bytes, runs no shorter than that for every unit.
int64_t tap_run_chunks(int64_t height, int64_t row_bytes, int64_t units, int64_t resident_warps);
// For measurements and tests: every later tap_run_chunks takes runs of at least this many bytes (0: no least run,
// as many runs as the warps ask for); -1 leaves it to the rule. Not for production code.
void force_tap_min_run_bytes(int64_t bytes);

// Whether padding's rows walk (cuda/kernels/read_tap_rows.cuh) takes a span walk's rows (the gaps between them
// narrow) of `width` elements through the warp's stage in shared memory, where a row fits the stage: rows of more
// than one element that are not whole 16-byte vectors (`whole_vector_rows` false; cuda/tuning.h kTapStageMaxBytes
// has the measurements), of at most kTapStageMaxRowBytes; whole-vector rows and longer ones take the span walk's
// vectors. Or with force_tap_stage, as forced.
bool tap_rows_staged(bool whole_vector_rows, int64_t width, int64_t element_bytes);
// For measurements and tests: every later tap_rows_staged answers `stage` (0 or 1) for rows of more than one element;
// -1 leaves it to the rule. Not for production code.
void force_tap_stage(int stage);

// Whether padding's rows walk sums a run's middle rows whole (cuda/kernels/read_tap_rows.cuh middle_by_span), where
// x's rows follow each other with no gap (its caller's test), a row of `width` elements of `element_bytes` with `head`
// and `tail` border columns: rows that are not whole 16-byte vectors (`whole_vector_rows` false), of at least
// kTapSpanSumMinRowBytes, with borders of at most kTapSpanSumMaxBorderSide columns a side (in registers) and at least
// kTapSpanSumMinWidthPerBorderColumn elements per border column (cuda/tuning.h has the measurements). Never where no
// middle column is left (width <= head + tail): the middle's sum would be a difference of equal sums, its rounding
// where the answer is 0; never with wider borders (the kernel has no walk for them). Or with force_tap_middle_by_span,
// as forced (where a middle column is left and the borders are at most kTapSpanSumMaxBorderSide a side).
bool tap_middle_by_span(bool whole_vector_rows, int64_t width, int64_t element_bytes, int64_t head, int64_t tail);
// Whether the staged walk takes a piece's middle rows as its staged span's sum less its border rows and the middle
// rows' border columns (cuda/kernels/read_tap_rows.cuh staged_walk, kSpanSums), where x's rows follow each other with
// no gap (its caller's test), a row of `width` elements with `head` and `tail` border columns: a middle column left and
// at least kStagedSpanSumMinWidthPerBorderColumn elements per border column (cuda/tuning.h has the measurements). Or
// with force_tap_middle_by_span, as forced (where a middle column is left).
bool tap_staged_span_sums(int64_t width, int64_t head, int64_t tail);
// For measurements and tests: every later tap_middle_by_span answers `by_span` (0 or 1) where a middle column is
// left and the borders are at most kTapSpanSumMaxBorderSide a side, and every later tap_staged_span_sums where a middle
// column is left; -1 leaves them to their rules. Not for production code.
void force_tap_middle_by_span(int by_span);

// Lanes a plane in padding's combine of per-tap sums without shares (cuda/taps.cu): 32 (tap_combine_kernel, a warp a
// plane) where the planes are fewer than kTapGroupCombineMinPlanesPerSm a multiprocessor; else the fewest (a power of
// two, at most kTapGroupCombineMaxLanes) that give every warp resident on the device (multiprocessors x warps_per_sm)
// a group of planes, and tap_group_combine_kernel runs the combine with that many lanes a plane (more where a plane
// has more runs of rows). H100, each lane count forced on every sweep pair it applies to (docs/limits.md §116): the
// group combine took r16 at padding 1-3 to 0.67-0.73 of the warp per plane's forward, r10's 9688 planes at padding
// 3 to 0.88 (8 lanes), and r20's 3152 at padding 2 to 1.06 (every lane count).
int32_t tap_combine_lanes(int64_t planes, int64_t multiprocessors, int64_t warps_per_sm);
// For measurements and tests: every later tap_combine_lanes answers `lanes` (1, 2, 4, 8, 16 or 32), the group
// combine's lanes still raised to cover a plane's runs; -1 leaves it to the rule. Not for production code.
void force_tap_combine_lanes(int lanes);
// Whether the group combine with the taps, where no cells are asked, takes each plane's taps by its own group of
// `lanes` lanes, the middle row's cells kept in registers rather than stored to the grid and read back
// (cuda/kernels/combine_taps.cuh combine_by_lane_groups, TapSumsArgs::own_taps): groups of at most
// kTapOwnTapsMaxLanes lanes, where the planes are so many that those stores outweigh the registers it holds.
bool tap_combine_own_taps(int32_t lanes);

// Padding's combining warps (cuda/taps.cu tap_combine_kernel, a warp a plane) resident at once on a device of
// `multiprocessors` SMs: past that many planes each warp runs another plane's chain of round trips.
int64_t tap_combine_warps(int64_t multiprocessors);
// Whether padding's tap kernels add each plane's share of the cropped GEMM as they combine its taps (cuda/ops_cuda.cpp
// tap_shares_apply, beside its bounds on bytes): `planes` no more than tap_combine_warps(multiprocessors),
// and each plane's shares, `c_out` columns of `taps` taps of acc_bytes values, at
// most kTapSharesMaxTrips trips of weight loads (tuning.h). Or with force_tap_shares, as forced.
bool tap_shares_short(int64_t planes, int64_t c_out, int64_t taps, int64_t acc_bytes, int64_t multiprocessors);
// For measurements and tests: every later tap_shares_short answers `shares` (0 or 1); -1 leaves it to the rule. Not
// for production code.
void force_tap_shares(int shares);
// For measurements and tests: every later padded CUDA forward runs its GEMM over x's elements wherever x's layout and
// settings allow it (1: cuda/ops_cuda.cpp element_gemm, its bounds on sizes and times aside), or never (0); -1 leaves
// it to the rule. Not for production code. forced_element_gemm: the value last forced.
void force_element_gemm(int elements);
int forced_element_gemm();
// Where a padded CUDA forward whose GEMM runs over taps makes that GEMM's weight, [C_in * kH * kW, C_out] of the
// accumulation type (fusedlse.h tap_weight_rows' layout): by the cells' weight kernel over tap_cut's cells ahead of the
// tap sums, their reader beside it (kAheadBeside) or waiting for it (kAheadWaits); by that kernel after the tap sums,
// just before the GEMM (kAfter); or by ATen's copy there (kCopy, the way before that kernel took it: docs/limits.md
// §116). ATen's copy whatever the way where the kernel takes no such weight (a side of more than 64 taps).
enum class TapWeightWay { kAheadBeside, kAheadWaits, kAfter, kCopy };
// The way for a forward over `x_bytes` of x whose tap reader can run beside the grid ahead of it (`reader_beside`:
// the tap kernels; not the small-plane kernels nor the keep GEMM) and whose weight over taps takes `weight_bytes`:
// ahead with the reader beside it for x of at most kTapWeightBesideMaxXBytes, ahead alone (readers that cannot run
// beside it) for a weight of at most kTapWeightAheadMaxRowsBytes (tuning.h), ATen's copy otherwise. Or with
// force_tap_weight_way, as forced.
TapWeightWay tap_weight_way(bool reader_beside, int64_t x_bytes, int64_t weight_bytes);
// For measurements and tests: every later tap_weight_way answers `way` (a TapWeightWay); -1 leaves it to the rule. Not
// for production code.
void force_tap_weight_way(int way);
// For measurements and tests: every later padded CUDA forward of 16-bit x takes its tap sums by one GEMM over a 0/1
// keep matrix wherever x's layout and the kernel allow it (1: cuda/ops_cuda.cpp keep_gemm_applies, the rule's bounds
// on paths, plane sizes, counts and taps aside), or never (0); -1 leaves it to the rule. Not for production code.
void force_keep_gemm(int keep);
int forced_keep_gemm();

const char* name(Strategy strategy);
const char* name(Reader reader);
const char* name(Epilogue epilogue);
const char* name(Layout layout);

}  // namespace plan
}  // namespace fusedlse
