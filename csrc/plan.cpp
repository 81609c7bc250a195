// The planner's cost model (see plan.h). Every constant names the measurement behind it: bench/strategies.py on one
// H200 (2026-11-30; 64 random problems of bench/problems.py's sweep and the named ones, each strategy and reader
// forced in turn; rN below is random problem N, its shape in bench/results/h200/strategies.md).

#include "plan.h"

#include "cuda/tuning.h"  // the tiled GEMM's tiles (plain C++)

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>

namespace fusedlse {
namespace plan {
namespace {

// --- Tuning table ---------------------------------------------------------------------------------------------------

// The fixed costs below were fitted to the random sweep of 13c0970 (bench/results/h200/sweep.json: 73 problems,
// the plan each ran and its time): measured / predicted has median 1.00, p10 0.75, p90 1.43 (with the first
// guesses, 3 us per launch, 6 us per read and no traffic besides x: 1.63, 0.99, 2.37). Off by more than 1.6x:
// float64 on the H200, whose GEMM runs at the float32 rate and whose 8-byte tiny planes read better (r03, r07,
// r39: 0.4-0.5), and GEMMs of K <= 4 or N <= 8 through cuBLAS (r00, r01, r22: 1.8-5).
// Host and GPU cost of one more launch in a chain of eager launches, torch's dispatch and allocations included
// (public H200 figure ~2.5 us per bare stream launch, RRZE gpu-small-kernels). After the reader, the split strategy
// takes one more launch with the tiled or rows epilogue and two with cuBLAS's (the GEMM, the logsumexp), and one for
// W.sum where the reader does not fold it (reader_folds_weight): kb_old ran in 14.3 us fused, 21-23 us split with
// cuBLAS's and W.sum's own launch.
constexpr double kLaunchUs = 7.0;
constexpr double kTiledLaunches = 1;
constexpr double kCublasLaunches = 2;
// Any read of x costs at least this: torch's flat sum of 8 MiB took 13.5 us on the H200, its bytes alone 2 us.
constexpr double kReadLatencyUs = 14.0;
// Shares of the device's DRAM bandwidth (read_gbps) each reader reached on problems it suits: the fused launch
// 0.83 (headline, 1 GiB: 269 us), torch's x.sum((2, 3)) 0.78-0.84 on planes and channels-last x of 0.2-1 GiB
// (r15, r16, r35, r52, headline) but 0.13-0.5 on strided rows (r10, r25, r40, r41, r57), a thread per tiny plane
// 0.1-0.57 (r07, r24, r26, r39, r54: neighbouring planes share cache lines, but one thread per plane keeps few loads
// in flight). kPlaneLanesShare: the plane-lanes reader on planes of more than kTinyPlaneElements, 0.87-0.99 of
// torch's flat sum (itself about 0.81 of read_gbps) on x of 0.2-0.9 GiB with W contiguous (r15, r16, r17, r35, r40,
// r44); 16-bit strided rows of 39-43 elements reach 0.4-0.5 (r42, r57), planes of a few elements 0.1-0.3.
constexpr double kFusedReadShare = 0.83;
constexpr double kTorchSumShare = 0.8;
constexpr double kTorchSumStridedShare = 0.3;
constexpr double kPlanesReadShare = 0.75;
constexpr double kTinyPlanesShare = 0.3;
constexpr double kPlaneLanesShare = 0.75;
// The tensor-core tile summing float64 planes of a few elements itself (tile_sums_planes): r27 of the sweep ([180286,
// 25, 1, 24] -> 413, rows of 24 elements 52 apart; H200) read its 865 MB in 226 us beside the tile's 376 alone, 0.8
// of read_gbps, where the plane-lanes reader took 326. Rows of 8 elements fill half of each half warp's lanes.
constexpr double kTilePlanesReadShare = 0.75;
constexpr int64_t kTilePlanesMinWidth = 8;
// The channel-rows reader on the channels-last x it is chosen for (channel_rows_suits; H200, bench/strategies.py of
// f91f29f, every reader forced in turn): the whole forward of r04 and headline_nhwc (1 GiB) at 3.7-3.8 TB/s (r04
// 287 us against 353 through torch's reduction; headline_nhwc 286 against torch's 289 and the fused launch's 301),
// and the fastest reader, or within 2% of it, on every channels-last problem of at most kChannelRowsMaxChannels
// channels and at least kChannelRowsMinPixels pixels (r05 28 us against the fused launch's 40, r21 65 against 83,
// r36 45 against torch's 58, r38, r55). With more channels or fewer pixels torch's reduction or the fused launch was
// faster: C of 142 to 1439 (r20, r23, r37, r52: by up to 1.27x), planes of 4 to 69 pixels (r07, r53, r54: 2.7-10x).
// The vector walk (cuda/tuning.h) read r37's 1439 channels faster than the fused launch: wider C where it applies.
// Down to 1024 pixels it is still the fastest, or within 7%, on 36 of 40 channels-last problems (B 8-512, C 32-1024,
// 1024-3720 pixels; H200, 902b8cb, every strategy and reader forced, docs/limits.md §48), 1.1-1.3x faster than torch's
// reduction on 24 of them ([32, 96, 32, 32] 14.2 us against 18.5, [512, 32, 32, 32] 29.3 against 37.4); it lost by
// 1.07-1.18x on C 600 of 32 and 48 batches, as it does at 8100 pixels ([32, 600, 90, 90] 188.9 against 170.2).
// Down to 400 pixels it was faster than torch's reduction on 28 of 30 problems of 64 MiB (C 8 to 600 of 20 x 20 to
// 31 x 31 pixels, float32 and bfloat16; H200, 598e622, docs/limits.md §48), and on 18 of 20 in 2f6b57f's grid of the
// same sizes (§49), by up to 2x (C 8 float32 of 31 x 31: 30.4 us against 61.7). Below: at 256 pixels on 6 of 10
// (598e622), at 256 and 361 on 14 of 20 (2f6b57f; C 8 bfloat16 1.6x slower), at 36 to 121 on 12 of 30 and at 36 on 3
// of 10 (C 8 up to 6.3x slower).
constexpr double kChannelRowsShare = 0.8;
constexpr int64_t kChannelRowsMaxChannels = 128;
// float64 x, which the vector walk does not take (float64_channel_vectors.patch: 1.1-2.6x slower than the scalar walk
// on every problem of the grid below), keeps the scalar walk up to a channel a thread. bench/strategies.py --grid
// float64_channels_last (64 MiB, planes of 20 x 20, 613 x 1 and 60 x 60; H200, b610c0a, readers forced, us, channel
// rows against torch's reduction; docs/limits.md section 71): C 129, 197 and 256 faster or level on all nine (C 256:
// 31.8 against 40.3, 32.0 against 44.8, 32.0 against 41.1; [11, 197, 60, 60] 30.2 against 51.6); C 320 and 384, two
// channels a thread for some threads only, 1.05-1.09x slower on three of six; C 512 faster on three, C 686 to 2048
// 1.05-1.6x slower on all nine. Measured on pixels that follow each other; pixels apart take the same loads.
constexpr int64_t kChannelRowsFloat64MaxChannels = kSplitThreads;
constexpr int64_t kChannelRowsMinPixels = 400;
// Down to 256 pixels for pixels of 32 to 800 bytes: e8d0c9d's planner audit (bench/results/h200/planner_audit_e8d0c9d,
// the channels_last and small_channels_last grids; H200, forced reader against the planner's torch reduction, the
// whole forward, docs/limits.md section 71) had the channel-rows reader faster on 13 of the 15 channels-last problems
// of 256 to 399 pixels and such pixels (float32 C 8, 32, 96 and 197, bfloat16 C 32 and 197, r52: 0.57-0.97 of the
// time; [665, 197, 16, 16] bfloat16 29.7 us against 52.2), level on one ([48, 197, 19, 19]) and 1.08x slower on one
// ([1365, 96, 16, 16] bfloat16). Outside those bytes it was slower there: 16-byte pixels 1.16-1.67x (C 8 bfloat16),
// 1200- and 2400-byte pixels 0.99-1.13x (C 600 of 64 MiB; of 16 to 48 batches faster).
constexpr int64_t kChannelRowsMidPixels = 256;
constexpr int64_t kChannelRowsMidPixelMinBytes = 32;
constexpr int64_t kChannelRowsMidPixelMaxBytes = 800;
// The channel-rows reader's pixel-vector walk (pixel_vectors_walk; cuda/split.cu pixel_vectors_kernel) on small
// channels-last planes, where torch's reduction, the plane-lanes reader and the other walks (a block per item and its
// syncs, or 2-byte loads) read at 0.3-0.6 of the flat read. H200, the channel-rows reader forced with it against the
// planner's choice before it, the whole forward (docs/limits.md section 72):
//  - tiny_channels_last (56 problems of 128 MiB, C 3 to 2048 on 2 x 2 to 5 x 5 pixels, float32 and bfloat16) and
//    small_channels_last's 6 x 6, best of 2 runs: of the 45 problems the rule takes, faster on 33 (0.78-0.97 of the
//    time: [3640, 2048, 3, 3] bfloat16 84.3 us against 108.0, [2097152, 8, 2, 2] bfloat16 120.0 against 137.4),
//    level on 8, slower on 4 (1.02-1.07: float32 C 512 of 3 x 3 and 5 x 5, C 16 of 4 x 4 and 5 x 5); of the 11 it
//    leaves (pixels of 16 or 32 bytes on 9 to 36 pixels) slower on 10 (up to 1.45x: [335544, 8, 5, 5] bfloat16
//    107.5 against 74.2).
//  - Larger planes, x of 64 MiB, C 32, 128 and 512: on 42 to 144 pixels faster on all 30 problems (0.72-0.97:
//    [21399, 32, 7, 7] bfloat16 31.1 against 43.3 through torch's reduction), on 196 level in float32 (1.01-1.02)
//    and faster in bfloat16 (0.87-0.91), on 256 slower than the vector walk chosen there (1.08-1.35).
//  - Its threads (B x C / elements per vector) numbered 21K to 2M in all of these; where they are fewer than
//    kPixelVectorsMinItems each walks a whole plane with the device far from full, so the rule stops there.
constexpr int64_t kPixelVectorsMaxPixels = 144;
// float64 planes of more channels than the scalar walk takes (kChannelRowsFloat64MaxChannels), of at least
// kChannelRowsMinPixels pixels, whose pixels are whole 16-byte vectors and span whole 128-byte lines
// (kPixelVectorsFloat64LineBytes), go to the pixel-vector walk with their pixels cut into chunks
// (pixel_vectors_tiling), where torch's reduction read them before. bench/strategies.py --grid float64_channels_last
// (64 MiB, planes of 20 x 20, 613 x 1 and 60 x 60; H200, readers forced, the whole forward, docs/limits.md section
// 74): C 320, 384, 512 and 2048 faster on all 12 problems (0.76-0.93 of the time: [6, 2048, 613, 1] 38.2 us against
// 50.4, [26, 512, 613, 1] 35.6 against 45.4); C 686, whose 5488-byte pixels cut lines, 1.04x and 1.11x slower on two
// of three ([30, 686, 20, 20] 38.9 against 35.0), level on r23 (44.8 against 44.9). Standalone
// (bench/experiments/channels_last_float64.cu), r23's x by such a walk: 20.6 us against 20.3 for the flat read of its
// bytes.
constexpr int64_t kPixelVectorsFloat64MinChannels = kChannelRowsFloat64MaxChannels + 1;
constexpr int64_t kPixelVectorsFloat64LineBytes = 128;
// A chunk's pixels: two trips of slot_share's 8 loads at least. Chunks up to an item for every resident thread:
// r23's best in the standalone grid was 31 chunks (163K threads), within 2% of 62.
constexpr int64_t kPixelVectorsMinChunkPixels = 16;
constexpr int64_t kPixelVectorsMinPixelBytes = 64;
constexpr int64_t kPixelVectorsAnyPixelsMaxPlane = 4;
constexpr int64_t kPixelVectorsMinItems = 16384;
// A contiguous copy reads and writes x at about 0.9 of the bandwidth (H200: 4.3 TB/s counting both).
constexpr double kCopyShare = 0.9;
// The weight is read once by either strategy (the fold, or W.sum's reduction), about as fast as torch's sum.
constexpr double kWeightReadShare = 0.8;
// The split strategy's own traffic: sums [B, C_in] written by the reader and read by the GEMM, logits [B, C_out]
// written by the GEMM and read by the logsumexp kernel. Small, skinny GEMMs move them at a fraction of the
// bandwidth (fitted with the constants above).
constexpr double kSplitTrafficShare = 0.35;
// cuBLAS's GEMM against the float32 FMA peak (r03: 68.7 GFLOP in float64 in about 1.4 ms, 47 of 67 TFLOP/s);
// float64 is counted at half the rate (the H200 runs it on tensor cores at about the float32 rate; the 4090 does not).
constexpr double kGemmShareOfPeak = 0.7;
// cuBLAS's GEMM over bfloat16 pieces (bf16_pieces_apply): [B, 3 x depth] x [3 x depth, C_out rounded up to 8] at
// kBf16PiecesShareOfPeak of DeviceProps::bf16_gflops, or the write of its float32 logits at kBf16PiecesWriteShare of
// the bandwidth where that takes longer (3 x depth of 96-170 channels: torch.mm of the pieces alone wrote 1.9-2.5 TB/s
// on an H100, 130-370 TFLOP/s; 430-525 TFLOP/s over 1800-2300), then the sums read, the pieces written and read back
// and the logits read back at kBf16PiecesTrafficShare. Fitted on both epilogues forced on 33 16-bit problems of rows
// and C_out of 256 or more (H100, bench/experiments/device_calls/pieces_epilogues.py, docs/limits.md section 105): the
// planner with SGEMM's count chose the slower epilogue by 2% or more on 16 of them (r62 1.64x, [1685, 226] -> 3576
// 1.92x, [41375, 150] -> 1239 1.88x), with this count on 2 (1.10 and 1.19x: GEMMs of 13-17 us where the tiled
// epilogue's own count runs short); summed relative loss 5.55 -> 0.29, level over 0.2-0.4 of the peak (0.61, 4
// problems, with a launch counted for the pieces kernel: section 106).
constexpr double kBf16PiecesShareOfPeak = 0.3;
constexpr double kBf16PiecesWriteShare = 0.4;
constexpr double kBf16PiecesTrafficShare = 0.5;
// cuBLAS's GEMM is counted as if K and N were at least this wide: a skinnier GEMM pays for a whole tile (its smallest
// kernels tile by 32: r23's float64 GEMM ran sm90_xmma_gemm_..._tilesize32x32x32). Refitted on f9c2612's kernels
// (bench/results/h200/strategies_columns.json: both epilogues forced on 40 problems, the narrow_columns grid and
// the sweep rows where they are close): at 64, as fitted on 1bf3889's, choosing between them cost 2.40 of summed
// relative loss against the faster one (the tiled epilogue 1.18-1.30x slower on all 8 of the grid's problems of 24
// and 32 columns, and on r58, [125565, 69] -> 35, 154.8 us against cuBLAS's 139.7); at 32 it costs 0.90: r58 and six
// of the eight go to cuBLAS, and no other sweep row changes plan. Left: [524288, 64] -> 24 and 32 (1.22-1.30x).
constexpr double kCublasMinTile = 32;
// cuBLAS's epilogue splits the GEMM's channels (cublas_k_splits) where its output tiles are fewer than the
// multiprocessors: for these thin GEMMs cuBLAS's kernels take tiles of about kCublasTileRows x kCublasTileCols (the
// sm90 kernels it ran on r23 and r43 of the sweep: 32 x 32 and 32 x 64), so each tile's whole chain of channels runs
// on one multiprocessor while the others idle. The GEMM alone, torch.mm against torch.bmm over views of the slices
// (H200, do_bench with the L2 flushed, us; docs/limits.md §56): r43 [2328, 657] -> 61 float64 21.5 -> 15.4 at 3
// slices (20.3 at 9); r32 [15, 1125] -> 135 float32 11.7 -> 8.0 at 15 (6.7 at 25, 18.3 at 3); short_rows [256, 512]
// -> 256 14.1 -> 8.9 at 8 (11.6 at 4, 15.7 at 2); r47 [1, 1473] -> 2 float64 8.7 -> 6.8 at 3; r23 [15, 686] -> 3860
// float64 15.5 -> 15.4 at 2 (17.4 at 7: its 21 MB of W.sum, not the chain, bound it). GEMMs of more tiles gained less
// or lost: r60 [73, 276] -> 3295 17.2 -> 12.7 at 4 (156 tiles: left whole), r06 [512, 2048] -> 1024 58.5 -> 52.9 at
// 4, r14 [65358, 220] -> 113 97.2 -> 124.2 at 2, r03 [2048, 2048] -> 8192 float64 1179 -> 1219 at 2. At most two
// blocks a multiprocessor, slices of 64 channels or more (r32's 25 slices of 45 were the fastest measured, but
// slices that short were measured on that GEMM only). Rows of kCublasSplitMaxColumns logits or more (on so few tiles,
// few rows: the logsumexp's block per row) stay whole: their GEMM gains about what reading the partials costs.
// r23's forward took 49.1 us at 2 slices against 44.5 whole with bias_lse's block kernel adding the partials (the
// GEMM 11.1 -> 10.0 us, the logsumexp 4.4 -> 9.3; torch.profiler), and 45.6 against 44.4 with its row kernel adding
// them (§57; 48.7 at 7 slices, 53.9 at 14). Forwards with the slices forced on GEMMs of more tiles than
// multiprocessors (§57) gained 2% at most: r60 72.5 -> 71.2 us at 3, r18 86.9 -> 85.2 at 5, r06 94.0 -> 93.9 at 4,
// r14 and r62 none. The cost model (cublas_us) does not count the gain.
constexpr int64_t kCublasTileRows = 32;
constexpr int64_t kCublasTileCols = 64;
constexpr int64_t kCublasSplitBlocksPerSm = 2;
constexpr int64_t kCublasSplitMinChannels = 64;
constexpr int64_t kCublasSplitMaxColumns = 512;
// The tiled GEMM + logsumexp since e4080e0 (H200, 2026-11-30; the gemm_lse op alone, docs/limits.md §10): 30-36
// TFLOP/s in float32 on GEMMs of 8-34 GFMA (0.45-0.54 of the FMA peak; cuBLAS 48-51), 7.8-9.3 in float64 (0.12-0.14;
// SIMT, where cuBLAS uses the H200's float64 tensor cores). Each logit's logsumexp costs about kLseFmas FMAs' worth
// of issue slots (an exp, a max, the scaling and the biases). A step (a few channels, one prefetched) waits about
// kTiledStepUs for memory when its FMAs are too few to cover it. Fitted together to both epilogues forced on 47
// problems (strategies_epilogues.json of e4080e0 and two runs of the plane-lanes reader's work): 0.45, 0.12 and 1 us
// choose the slower epilogue by 3% or more on 4 of them (r07 6%, r14 8%, r27 16%, r58 12%; the tiled kernel's
// wide tiles do better on those than its share says, and worse on r62); 0.4, 0.08 and 1.5 us did on 5 (r20 by 28%).
constexpr double kTiledShareOfPeak = 0.45;
// The float64 share is the SIMT tiles' fit, now for float64 of at most 32 columns only (the SIMT tiles float64
// keeps); wider float64 runs on the tensor cores (docs/limits.md section 44), with the share below.
constexpr double kTiledFloat64ShareOfPeak = 0.12;
// The tensor-core tile (float64 of more than 32 columns): r27's GEMM + logsumexp, 7.1 GFLOP counted as above, in
// 532 us (the gemm_lse op alone, ncu, docs/limits.md section 44; 501 us at three blocks a multiprocessor, section
// 66; 408 us on sm_90's m16n8k8 with biases fetched ahead, section 67). One shape, not refitted since 44: its
// predictions run above the measured times; r43's and r23's GEMMs stay with cuBLAS's epilogue, still the faster.
constexpr double kTiledMmaShareOfPeak = 0.2;
// The bfloat16 tensor-core tile (kBf16MmaTile): its three products a multiply-add at kTiledBf16ShareOfPeak of
// DeviceProps::bf16_gflops, each logit's kLseFmas at kTiledBf16LseShare of the FMA peak, both over whole tiles and
// steps, plus kBf16StageUsPerChannel a channel for each wave of blocks, which stage their rows' pieces before their
// first product (the blocks of a wave start together). Fitted on an H100 (docs/limits.md section 107: both epilogues
// forced on 37 16-bit GEMMs the tile takes, the tiled time needed for cuBLAS's predicted one to choose right): the
// planner then took the slower epilogue on 3 of them, by 1.4-2.6%, the summed loss 0.067 of a problem's time. The
// products run at about 0.58 of the tensor cores' peak; the logsumexp and the tile's stores are the rest.
constexpr double kTiledBf16ShareOfPeak = 0.58;
constexpr double kTiledBf16LseShare = 0.39;
constexpr double kBf16StageUsPerChannel = 0.14;
constexpr double kLseFmas = 16;
constexpr double kTiledStepUs = 1.0;
// The thin tile's steps (32 rows x 64 columns, 32 channels deep: four times the channels of the wide tiles' steps)
// after a block's first wait about twice as long. H200 (docs/limits.md §54), both epilogues forced: r60 (73 rows,
// C_in 276, C_out 3295, float32: 9 steps a block) 78.0 us tiled (its kernel 21.5 us under Nsight Compute, the merge
// 3.7) against 73.1 with cuBLAS's, where 1 us a step predicted 16.1 against 18.1; the thin tile's rows of 1 or 2
// steps kept the tiled epilogue faster by 0.6-5.4 us (r02, r05, r12, r30, r36, r48, r61), and 2 us for every step
// would have sent r48 (1 step) to the gemv epilogue, not measured faster.
constexpr double kThinTileLaterStepUs = 2.0;
// Split-K (gemm_tiling) where it cuts the longest chain of steps a block slot runs by at least kLaunchUs' worth of
// steps: it costs bias_lse's launch (and the partial logits' round trip through L2). Cutting by a quarter or more
// instead split r25's GEMM (8 steps) and r60's (9), where the forward gained at most 2% (r60 81.8 -> 79.9 us at 8
// ranges, H200) and the cost model then preferred another epilogue (docs/limits.md section 45).
constexpr int64_t kSplitMinSavedSteps = static_cast<int64_t>(kLaunchUs / kTiledStepUs);
// The rows epilogue (cuda/gemm_lse.cu) is bound by issue slots: per logit, a lane issues about kRowsLseChannelSlots per
// channel (the FMA, and its share of the shared-memory loads of W.sum and the row's sum) and kRowsLseLogitSlots for the
// biases, the mask and the logsumexp (kRowsLseFloat64LogitSlots in float64, whose push keeps its selects), and float64
// takes kRowsLseFloat64Factor times as many slots (FMAs at half rate, a precise exp of a dozen instructions where
// float's takes two). It reaches kRowsLseIssueShare of the device's issue rate (lanes x multiprocessors x clock:
// fp32_gflops / 2). First figures from the SASS, then checked on the H200 (f91f29f): r00's epilogue predicted 95 us,
// measured about 96 (the forward's 119 less its reader's 19 and W.sum's 3); r01's 32, measured about 29. Against the
// tiled epilogue, forced on the 16 problems where it applies: faster on 13 of them, within 1.5% on r21, r48 and kb_old:
// r00 212 -> 119 us, r01 172 -> 48, r07 70 -> 53, skinny 51 -> 35, r53 27 -> 23, r13 35 -> 31. kRowsLseLogitSlots was
// 24 with float's precise exp (about eight instructions more): __expf took r00's forward from 112.4 to 105.2 us (H200,
// same run), its epilogue's 90 us by 8%. It was 22 before float's push lost its selects (lse_push_all): r00's forward
// 104 -> 77.5 us, its epilogue about 55 (14 slots: 54 predicted), r45's 547 -> 428 (the model 406 at 14); float64's 22
// is the figure from before.
constexpr double kRowsLseChannelSlots = 1.4;
constexpr double kRowsLseLogitSlots = 14;
constexpr double kRowsLseFloat64LogitSlots = 22;
constexpr double kRowsLseFloat64Factor = 3;
constexpr double kRowsLseIssueShare = 0.7;
// Every block of the rows epilogue first stages W.sum, all blocks at once: a latency of about kRowsLseStageTripUs per
// trip of kRowsLseStageTripValues values that no compute hides where there is little (wide C_out on few rows); the
// narrow epilogue's trips are kNarrowLseStageTripValues. Fitted on the H200 to r05 (B 3, C_in 5, C_out 700: 7 trips;
// the rows epilogue 27.8 us forced, the tiled 25.4) against r10, r56 and r45 (C_out 755 to 1543 on 4844 rows and more:
// the rows epilogue 41.5, 43.7 and 577.7 us, the tiled 40.5, 47.8 and 601.2; 6e0af90's kernels with the rows epilogue
// allowed past 512 columns), when the kernels loaded 4 values per thread at a time (blocks of 128 and 256 threads).
// They now copy W.sum asynchronously, every value in flight at once; the terms still rank the epilogues as measured
// then (H200, forced, the whole forward): r05 rows 24.7 us against tiled 25.4 (tiled chosen); r02 (64 rows, C_out
// 4096) 23.5 against 17.7 (tiled), r10 36.8 against 38.3 (rows), in a build whose reader let the epilogue in early.
constexpr double kRowsLseStageTripUs = 0.7;
constexpr int64_t kRowsLseStageTripValues = 512;
constexpr int64_t kNarrowLseStageTripValues = 1024;
// The gemv epilogue (cuda/split.cu, bias_lse's block per row) waits on L2 once per trip of loads (a block's threads
// each load shares_lse_loads channels of a column and the row's sums), and a multiprocessor's rows take their trips
// one after another: kGemvTripUs per trip, the first kGemvFirstTripUs beyond the launch (the biases are staged
// before the reader ends). Fitted on the H200 (bench/strategies.py --epilogues: every split epilogue forced on 37
// sweep and named problems and the 60 of the few_rows grid, docs/limits.md §51): the epilogue the planner picks from
// the measured times loses 1.79 of summed relative time to the fastest, against 4.59 without the gemv epilogue.
// Measured, the forward with the gemv epilogue against the best other: 0.2-5.4 us faster on 27 of the 32 problems whose
// rows take one trip (headline_bf16 138.5 us against the tiled epilogue's 142.1, odd509 253.7 against 257.1), 0.1-1.2
// us slower on the other 5 (the narrow epilogue at 16 columns); 5.9 us faster on r20's four trips (32.8 against 38.7);
// 1.3-1.7 us slower per trip on many (16 trips: 21-25 us; r25, 10253 rows of 1 trip: 717.5 against 640.0).
constexpr double kGemvFirstTripUs = 0.3;
constexpr double kGemvTripUs = 1.3;
// The narrow epilogue (cuda/gemm_lse.cu), in issue slots of a lane as the rows epilogue's: per row and channel its
// kCols FMAs, its share kCols / rows of the shared-memory loads of W.sum (each serves the group's rows), the sum's load
// and kNarrowLseLoopSlots of the loop; per row the butterfly (a shuffle and an add per logit and level), and the
// logsumexp's kRowsLseLogitSlots per logit, taken by a lane per row of a group while the others wait. Its sums are read
// once, at kNarrowLseReadShare of the bandwidth; the issue share is the rows epilogue's. Figures from counting the
// kernel's instructions, checked on the H200 (docs/limits.md section 21; every epilogue forced on 16 problems of
// C_out 1 to 32): the planner's epilogue was the fastest, or within 3% of it, on each (r07 2%: the rows epilogue;
// r47, one row of 1473 float64 channels: cuBLAS's by 3%), and it sends to cuBLAS's the GEMMs of few rows and many
// channels where the narrow kernel was 1.5-1.6x slower (1000 x 512 x 32, 8 x 3000 x 5). Whole forwards predicted
// against measured: r22 120 us (120), r50 130 (83), r24 85 (58), r59 319 (420: its reader).
constexpr double kNarrowLseLoopSlots = 2;
constexpr double kNarrowLseReadShare = 0.7;
// A shared-memory load of W.sum costs this many FMA slots: a multiprocessor serves 32 four-byte words a clock
// (a group's lanes read different channels' words) against 128 FMAs, so at 16 and 32 columns (2 rows, 1 row per
// W.sum word) the kernel waits on shared memory, not on its FMAs. H200 (a build whose narrow epilogue took up to the
// 227 KiB a block may opt into, not kept; each epilogue forced, us, the whole forward; docs/limits.md §49): [100000,
// 800] -> 32 float32 584 narrow against 409 tiled and 334 cuBLAS's (the model at one slot: 275 against 560 and 628
// for the epilogue alone), [50000, 1000] -> 32 365 against 263 and 209, [20000, 2000] -> 16 231 against 208 and 241;
// at 4 and 8 columns the fastest or within 7-25% of it.
// With it (f9c2612, the same forcing): C_out 20 to 32 (32 columns) of 50 to 767 channels on 30000 to 300000 rows go
// to the tiled epilogue, 1.2-1.4x faster than the narrow one on all 7 measured ([100000, 767] -> 32: 393 us against
// 540, where torch's shortcut took 534); cuBLAS's was 10-19% faster still (295 against 362 at 700 channels). 4 to 16
// columns stay narrow, the fastest on all 5 problems measured ([200000, 200] -> 16: 170 against 180 cuBLAS's, 230
// tiled).
constexpr double kNarrowLseSharedLoadSlots = 4;

// Planes of at most this many elements go to the plane-lanes reader (one lane per plane below 16 elements), in
// channels-last x only where pixels and planes are not too small (below). Measured with a thread per plane, before
// the reader had groups of lanes: on planes of 2 to 24 elements it was the fastest reader or within 7% of it on 14 of
// 16 problems (r09 448 us vs torch's 677, r26 416 vs 1314, r50 177 vs 374), in every layout; on 69 elements (r54)
// torch's was 1.7x faster. In channels-last x whose pixels follow each other its lanes read elements C apart, and
// torch's reduction reads planes of fewer than kTinyLanesMinPlaneBytes, or pixels of fewer than
// kTinyLanesMinPixelBytes, faster. H200 (902b8cb, readers forced, docs/limits.md §48), 56 problems of 128 MiB (C 3 to
// 2048, 2 x 2 to 5 x 5 pixels, float32 and bfloat16) and 12 others: on pixels of 32 bytes or less and planes of 16 or
// more pixels the plane-lanes reader took 1.1-13x torch's time (C 16 bfloat16 of 4 x 4: 901 us against 71;
// [1000000, 8, 4, 4]: 1039 against 171); on planes of 4 pixels up to 1.44x, of 9 bfloat16 pixels 1.06-1.2x (seed 7's
// r53, [53725, 1650, 5, 1] bfloat16: 955 against 826); elsewhere it was level or faster, by up to 17% (C 2048 float32
// of 3 x 3: 64.8 against 76.1), but on one problem ([100000, 32, 8, 4] float32: 149 against 127).
constexpr int64_t kTinyPlaneElements = 32;
constexpr int64_t kTinyLanesMinPlaneBytes = 32;
constexpr int64_t kTinyLanesMinPixelBytes = 64;

// Contiguous planes of any size, and planes of one element in any layout, go to the plane-lanes reader. Each reader
// forced in turn with the planner's epilogue (H200, 5ae8489, best of 3 interleaved rounds): on contiguous planes it
// was the fastest or within 1% on all 14 problems, where torch's reduction had been chosen for float64 and for planes
// of 16K elements and more (r51 23.1 us against torch's 26.1, r30 30.6 against 34.8, r44 196.7 against 202.3, r15
// 188.5 against 192.1, r31 119.7 against 121.8; r35 150.7 against 148.8, r47 67.4 against 67.8); on planes of one
// element, strided or float64 (no plane runs), 2-12% faster than torch's copy (r43 45.7 against 51.3, r03 1252
// against 1321; c1 (600000 x 53 float16, strided) 224.4 against 241.3, c3 (2048 x 2048 float64) 50.1 against 54.9).
// Torch's reduction had been faster there before the reader's 16-byte loads and load kinds (e5e10bb, b237cb9).

// Contiguous planes go to the split strategy's plane-lanes reader rather than the fused launch unless they are of
// float32, every one starts on a 16-byte boundary (Problem::planes_aligned), and there are more than this many. Each
// forced in turn (H200, the plane-lanes reader loading whole vectors from a plane's first aligned one, best of 3
// interleaved rounds, us, plane-lanes against fused): 16-bit planes r34 167.8 / 183.0, r29 74.3 / 81.4, r49 48.6 /
// 63.9, headline_bf16 143.9 / 150.4, headline_fp16 143.3 / 149.0; unaligned float32 planes odd509 262.0 / 272.8;
// few float32 planes, which the reader cuts into pieces for every SM: skinny (4 planes of 4M elements) 28.3 / 32.9,
// r48 (15) 58.7 / 64.7. On aligned float32 planes the fused launch was faster only on large planes in large x
// (kFusedMinRowBytes): the headline (1024 planes of 256K), 256.4 against 263.4; not mid (4096 of 16K), 85.6 against
// 84.0, nor r12 (180 planes of 389K in 267 MiB, a slice of C, aligned), 99.3 against 91.1.
constexpr int64_t kLanesMaxFewPlanes = 128;

// Where the fused launch was measured good. Outside, its epilogue (units of at most 8 batches, a GEMM per unit, one
// logsumexp per batch tile) is not modelled: it was 1.1x to 2000x slower than the split strategy there, so the
// planner does not choose it.
//  - C_out: up to 700 it was fastest or within 10% (r05, r12, r48); at 2069 to 5164 it took 1.5-12x the split
//    strategy's time (r02, r18, r30, r60, r61).
constexpr int64_t kFusedMaxOutChannels = 1024;
//  - B: at 1378 and more, 1.4-1.9x slower (r16, r33, r52); at 1e5 and more, 20-2000x (r00, r01, r14).
constexpr int64_t kFusedMaxBatch = 512;
//  - contiguous float32 planes (the only ones it still reads, fused_excluded): of at least 256 KiB, in x that takes at
//    least 100 us to read. Each strategy forced on 26 problems of 32 MiB to 1 GiB (H200, bbbb403, do_bench best of
//    2, us, fused against split; docs/limits.md §47): with planes of 16 KiB the fused launch was 1.9-3.6x slower at
//    every size (B 128 x C 16 -> 16, 32 MiB: 73.6 against 20.1; B 256 x C 64 -> 16, 256 MiB: 161.4 against 75.5;
//    B 128 x C 512 -> 16, 1 GiB: 581.7 against 257.5, where torch's shortcut took 297.2), with 64 KiB 1.03-1.41x
//    slower (up to 512 MiB: 144.2 against 135.1); with 256 KiB to 1 MiB, at 256 MiB (56 us of reading) 3-4% slower
//    on 3 of 4 problems, at 512 MiB level (136.7 against 136.2), at 1 GiB 0.2-1.6% faster (the headline 250.6
//    against 251.0; 256.4 against 263.4 on 9884c92, §26).
constexpr int64_t kFusedMinRowBytes = 256 * 1024;
constexpr double kFusedMinReadUs = 100;
//  - channels-last x: at most this many partial sums per batch (channels x pieces of 128 KiB the positions are cut
//    into), which one block adds up at the end: 524k of them took r04 (B = 1) 700 us against 359 through torch's
//    reader; 32k cost the headline's channels-last copy 2%; 400 to 5k (r05, r20, r21, r38) left the fused launch
//    faster than torch's reader (the channel-rows reader was faster still on r05, r21 and r38: channel_rows_suits
//    leaves the fused launch out there); 234K (r37: B 24, C 1439 bfloat16, 7425 pixels) took 220 us against the
//    split strategy's 236 through torch's reader and 301 through the channel-rows reader (e421e09, forced).
constexpr int64_t kFusedMaxPartialsPerBatch = 256 * 1024;
constexpr int64_t kFusedPieceBytes = 128 * 1024;
//    And at most kFusedChannelsLastMaxBatch batches of kFusedChannelsLastMinPixels pixels or more whose channels are
//    not whole 16-byte vectors, where the channel-rows reader does not take them (pixels apart, or a vector walk too
//    wide). Each strategy forced (H200, 08a734f, do_bench best of 2, us, fused against split; docs/limits.md §47):
//    the fused launch won on r20 (B 16, C 197, 3720 pixels) 38.3 against 60.4 through torch's reduction and r37 (B 24,
//    C 1439 bfloat16, 7425 pixels, above); with 64 batches and more it was 1.3-13x slower ([256, 64, 32, 32] -> 16:
//    492.3 against 37.6, and 434 where torch's shortcut took 101; [64, 197, 60, 60] -> 16: 83.8 against 66.0), level
//    at [512, 32, 32, 32]. Up to 32 batches torch's reduction was up to 1.8x faster on pixels of whole 16-byte
//    vectors (C 96 and 600 float32: [8, 96, 60, 60] 19.7 against 36.2 fused; the fused launch 5-11% faster on five)
//    and 1.1-1.7x slower on the rest (C 197: [8, 197, 45, 45] 36.1 against 26.2; 3ae7f4c, §47). The channel-rows
//    reader, where it applies, was within 10% of the fused launch or faster on all of them (902b8cb, §48: r20 38.7
//    against 38.8, [32, 600, 45, 45] 74.1 against 67.1). The fused launch was not measured with pixels apart, the
//    only channels-last x it still takes, on planes under kFusedChannelsLastMinPixels.
constexpr int64_t kFusedChannelsLastMaxBatch = 32;
constexpr int64_t kFusedChannelsLastMinPixels = 1024;
//  - float64: its fused kernel keeps one block per multiprocessor (255 registers) and reads at about half speed: on
//    424 rows (B x C_in) and more torch's reader was 1.4-5x faster (r15, r31, r35, r47); on 41 and 7 rows the split
//    strategy with the plane-lanes reader and the rows epilogue was 1.27x and 1.42x faster (r19: 23.5 against
//    29.9 us, r63: 26.2 against 37.1; H200, 6e0af90's forward with each plan forced).
//  - x small enough to read in this long on the device, of at most kSmallInputMaxChannels channels: one launch beats
//    four whatever the rows (kb_old: 1.6 MB of 4 KiB planes, fused 14.3 us, split 21-23 us; 9.1 against 21.8 on
//    ea7cecb, channels-last 19.7 against 23.2).
constexpr double kSmallInputUs = 2.0;
//    With more channels the fused launch's epilogue, not x's read, sets its time there: on 19 such problems of 0.5 to
//    8.5 MiB (H200, ea7cecb, each strategy forced, do_bench us, fused against split) it was slower on 15, by 1.2x to
//    230x (B 4096 x C 2 of 8 x 8: 1992 against 8.6; [64, 64, 16, 16] bfloat16 -> 16: 141.8 against 9.5;
//    [16, 16, 32, 32] -> 16: 69.1 against 9.6; [7, 5000, 8, 8] -> 300: 145.3 against 43.0; [3, 777, 16, 16]
//    bfloat16 -> 4: 37.2 against 10.8), level on 2 (C_in 3 in bfloat16, B 1024 x C_in 4) and faster on 2 (kb_old;
//    [4, 2048, 8, 8] -> 16: 25.8 against 34.5): docs/limits.md §46. Batches beyond kFusedMaxBatch leave it out
//    whatever x's size.
constexpr int64_t kSmallInputMaxChannels = 4;

// --- Model ----------------------------------------------------------------------------------------------------------

std::atomic<int> forced_strategy{-1};
std::atomic<int> forced_reader{-1};
std::atomic<int> forced_epilogue{-1};
std::atomic<int> forced_walk{-1};
std::atomic<int64_t> forced_channel_slices{0};
std::atomic<int64_t> forced_tap_min_run_bytes{-1};
std::atomic<int> forced_tap_shares{-1};
std::atomic<int> forced_element_gemms{-1};
std::atomic<int> forced_tap_weight_way{-1};
std::atomic<int> forced_keep_gemms{-1};
std::atomic<int> forced_tap_stage{-1};
std::atomic<int> forced_tap_middle_by_span{-1};
std::atomic<int> forced_tap_combine_lanes{-1};
std::atomic<int> forced_plane_lanes_persistent{-1};
std::atomic<int64_t> forced_plane_lanes_pieces{0};

double x_bytes(const Problem& p) {
  return static_cast<double>(p.batch) * p.in_channels * p.height * p.width * p.element_bytes;
}

double read_us(double bytes, const DeviceProps& d, double share) {
  return kReadLatencyUs + bytes / (d.read_gbps * 1e3 * share);
}

bool in_place_for_planes(Layout layout) { return layout == Layout::kPlanes || layout == Layout::kChannelsLast; }

bool channel_rows_suits(const Problem& p) {
  if (pixel_vectors_walk(p)) return true;
  const int64_t scalar_walk_channels = p.element_bytes == 8 ? kChannelRowsFloat64MaxChannels : kChannelRowsMaxChannels;
  const int64_t pixel_bytes = p.in_channels * p.element_bytes;
  const bool mid_pixels = pixel_bytes >= kChannelRowsMidPixelMinBytes && pixel_bytes <= kChannelRowsMidPixelMaxBytes;
  const int64_t min_pixels = mid_pixels ? kChannelRowsMidPixels : kChannelRowsMinPixels;
  const bool vector_walk = channel_vectors_blocks(p) >= kChannelVectorsMinBlocks;
  return p.layout == Layout::kChannelsLast && p.in_channels > 1 &&
         (p.in_channels <= scalar_walk_channels || vector_walk) && p.height * p.width >= min_pixels;
}

// Why the fused launch is not considered for p, or nullptr where it is.
const char* fused_excluded(const Problem& p, const DeviceProps& d) {
  const int64_t plane = p.height * p.width;
  if (plane <= kTinyPlaneElements) return "planes this small: the fused reader and epilogue are far slower";
  if (!in_place_for_planes(p.layout)) return "the fused launch would copy x first";
  if (p.out_channels > kFusedMaxOutChannels) return "C_out is too wide for the fused epilogue";
  if (p.element_bytes == 8) return "float64 x reads faster in the split strategy";
  if (p.batch > kFusedMaxBatch) return "too many batches for the fused epilogue";
  if (x_bytes(p) <= kSmallInputUs * d.read_gbps * 1e3) {
    return p.in_channels <= kSmallInputMaxChannels
               ? nullptr
               : "x this small, of this many channels: the fused launch's epilogue takes longer than the split "
                 "strategy's launches";
  }
  if (channel_rows_suits(p)) return "the channel-rows reader reads this channels-last x faster";
  if (p.layout == Layout::kPlanes) {
    if (p.element_bytes != 4) return "the plane-lanes reader reads 16-bit planes faster";
    if (!p.planes_aligned) return "the plane-lanes reader reads planes that start inside a 16-byte vector faster";
    if (p.batch * p.in_channels <= kLanesMaxFewPlanes) return "the plane-lanes reader cuts few planes for every SM";
    if (plane * p.element_bytes < kFusedMinRowBytes) return "planes this short read faster in the split strategy";
    if (x_bytes(p) < kFusedMinReadUs * d.read_gbps * 1e3) return "x this small reads faster in the split strategy";
    return nullptr;
  }
  if (p.batch > kFusedChannelsLastMaxBatch) return "too many batches of channels-last x for the fused epilogue";
  if (plane < kFusedChannelsLastMinPixels) return "channels-last planes this small were not measured fused";
  if (p.pixels_follow && p.in_channels * p.element_bytes % 16 == 0) {
    return "torch's reduction reads channels-last pixels of whole 16-byte vectors faster";
  }
  const int64_t pieces = (plane * p.in_channels * p.element_bytes + kFusedPieceBytes - 1) / kFusedPieceBytes;
  return pieces * p.in_channels <= kFusedMaxPartialsPerBatch ? nullptr
                                                             : "too many partial sums per batch for one block";
}

double reader_us(Reader reader, const Problem& p, const DeviceProps& d) {
  const double bytes = x_bytes(p);
  switch (reader) {
    case Reader::kPlanes: return read_us(bytes, d, kPlanesReadShare);
    case Reader::kCopyThenPlanes:
      return kLaunchUs + 2 * bytes / (d.read_gbps * 1e3 * kCopyShare) + read_us(bytes, d, kPlanesReadShare);
    case Reader::kPlaneLanes:
      return read_us(bytes, d, p.height * p.width <= kTinyPlaneElements ? kTinyPlanesShare : kPlaneLanesShare);
    case Reader::kTorchSum:
      return read_us(bytes, d, in_place_for_planes(p.layout) ? kTorchSumShare : kTorchSumStridedShare);
    case Reader::kChannelRows:
      return p.layout == Layout::kChannelsLast ? read_us(bytes, d, kChannelRowsShare)
                                               : reader_us(Reader::kTorchSum, p, d);
    case Reader::kInEpilogue:  // the tiled epilogue's loads: as the plane-lanes reader's of one-element planes
      return reader_us(Reader::kPlaneLanes, p, d);
  }
  return std::numeric_limits<double>::infinity();
}

double weight_us(const Problem& p, const DeviceProps& d) {
  const double bytes = static_cast<double>(p.in_channels) * p.out_channels * p.kernel_area * p.element_bytes;
  return bytes / (d.read_gbps * 1e3 * kWeightReadShare);
}

double fused_us(const Problem& p, const DeviceProps& d) {
  return kLaunchUs + read_us(x_bytes(p), d, kFusedReadShare) + weight_us(p, d);
}

// The rows epilogue's shared memory with `lanes` lanes per row: W.sum and the biases' sum padded to whole chunks,
// then the sums [C_in][rows + 1] of the block's kRowsLseThreads / lanes rows.
int64_t rows_lse_shared_bytes(int64_t in_channels, int64_t out_channels, int64_t acc_bytes, int64_t lanes) {
  const int64_t padded_columns = ceil_div(out_channels, kRowsLseChunk) * kRowsLseChunk;
  const int64_t rows = kRowsLseThreads / lanes;
  return ((in_channels + 1) * padded_columns + in_channels * (rows + 1)) * acc_bytes;
}

// The narrow epilogue's columns for C_out: 4, 8, 16 or 32 (its kernels' kCols).
int narrow_lse_columns(int64_t out_channels) {
  return out_channels <= 4 ? 4 : out_channels <= 8 ? 8 : out_channels <= 16 ? 16 : 32;
}

// Its shared memory: W.sum transposed, [columns][C_in], and the biases' sum.
int64_t narrow_lse_shared_bytes(int64_t in_channels, int64_t columns, int64_t acc_bytes) {
  return (in_channels + 1) * columns * acc_bytes;
}

double float64_rate(const Problem& p) { return p.element_bytes == 8 ? 0.5 : 1.0; }
int64_t output_bytes(const Problem& p) { return p.output_bytes > 0 ? p.output_bytes : p.element_bytes; }
double acc_bytes(const Problem& p) { return p.element_bytes == 8 ? 8 : 4; }

// The gemv epilogue's block of `threads` threads (gemv_lse_tiling): its slices and its trips of loads a row.
GemvLseTiling gemv_block_tiling(int64_t threads, int64_t channels, int64_t out_channels, int64_t acc_bytes) {
  const int slices = channel_slices(channels, out_channels, threads);
  const int64_t loads = shares_lse_loads(static_cast<int>(acc_bytes));
  const int64_t trips = ceil_div(out_channels, threads / slices) * ceil_div(channels, slices * loads);
  return GemvLseTiling{threads, slices, std::max<int64_t>(trips, 1)};
}

// The split strategy's launches after the reader, GEMM, biases and logsumexp, by `epilogue`. x_planes: the narrow
// epilogue sums x's planes itself (narrow_reads_planes), its loads x's bytes at the tiny-plane reader's rate instead
// of the sums'.
double epilogue_us(const Problem& p, const DeviceProps& d, Epilogue epilogue, bool x_planes = false) {
  const double peak_flops = d.fp32_gflops * 1e3 * float64_rate(p);  // per microsecond
  if (epilogue == Epilogue::kNarrowLse && narrow_lse_applies(p.in_channels, p.out_channels, acc_bytes(p))) {
    const bool float64 = p.element_bytes == 8;
    const NarrowLseTiling t = narrow_lse_tiling(p.batch, p.in_channels, p.out_channels,
                                                static_cast<int64_t>(acc_bytes(p)), resident_threads(d));
    const double cols = t.columns, rows = narrow_lse_rows(t.columns), lanes = t.lanes;
    const double channel_slots =
        (cols + kNarrowLseSharedLoadSlots * cols / rows + 1 + kNarrowLseLoopSlots / rows) * (float64 ? 2 : 1);
    // Per row, each channel range's channels, reduce-scatter and logsumexp (a split range's raw logits' stores
    // counted as the logsumexp).
    const double row_slots = t.k_splits * (ceil_div(t.split_channels, t.lanes) * lanes * channel_slots +
                                           std::log2(lanes) * cols * 2 * lanes +
                                           cols *
                                               (float64 ? kRowsLseFloat64LogitSlots * kRowsLseFloat64Factor
                                                        : kRowsLseLogitSlots) *
                                               lanes / rows);
    const double compute = p.batch * row_slots / (d.fp32_gflops * 1e3 / 2 * kRowsLseIssueShare);
    const double sums = x_planes ? read_us(x_bytes(p), d, kTinyPlanesShare)
                                 : p.batch * p.in_channels * acc_bytes(p) / (d.read_gbps * 1e3 * kNarrowLseReadShare);
    const double staging = kRowsLseStageTripUs * ceil_div(t.split_channels * t.columns, kNarrowLseStageTripValues);
    // Split-K: bias_lse's launch, and the partial logits written and read back (as the tiled epilogue's).
    const double partials = t.k_splits > 1 ? kLaunchUs + 2.0 * t.k_splits * p.batch * p.out_channels * acc_bytes(p) /
                                                             (d.read_gbps * 1e3 * kSplitTrafficShare)
                                           : 0.0;
    return kTiledLaunches * kLaunchUs + std::max(compute, sums) + staging + partials;
  }
  if (epilogue == Epilogue::kNarrowLse) epilogue = Epilogue::kTiledLse;  // what runs where it does not apply
  if (epilogue == Epilogue::kRowsLse && rows_lse_applies(p.in_channels, p.out_channels, acc_bytes(p))) {
    const bool float64 = p.element_bytes == 8;
    const double per_logit = (p.in_channels * kRowsLseChannelSlots +
                              (float64 ? kRowsLseFloat64LogitSlots : kRowsLseLogitSlots)) *
                             (float64 ? kRowsLseFloat64Factor : 1.0);
    const double slots =
        static_cast<double>(p.batch) * ceil_div(p.out_channels, kRowsLseChunk) * kRowsLseChunk * per_logit;
    const double compute = slots / (d.fp32_gflops * 1e3 / 2 * kRowsLseIssueShare);
    const double sums = p.batch * p.in_channels * acc_bytes(p) / (d.read_gbps * 1e3 * kSplitTrafficShare);
    const double staging = kRowsLseStageTripUs * ceil_div(p.in_channels * ceil_div(p.out_channels, kRowsLseChunk) *
                                                              kRowsLseChunk,
                                                          kRowsLseStageTripValues);
    return kTiledLaunches * kLaunchUs + std::max({compute, sums, staging});
  }
  if (epilogue == Epilogue::kRowsLse) epilogue = Epilogue::kTiledLse;  // what runs where it does not apply
  if (epilogue == Epilogue::kGemvLse) {
    // Trips of kSplitThreads' block, what the constants were fitted on (H200, docs/limits.md §51), where the wide
    // block runs (gemv_lse_tiling): it takes fewer, so the estimate stays an upper bound there (§102: mid's four
    // trips in two, not re-fitted), and the planner's choices are those it made before the wide block.
    const int64_t trips =
        gemv_block_tiling(kSplitThreads, p.in_channels, p.out_channels, static_cast<int64_t>(acc_bytes(p))).trips;
    const double row_trips = static_cast<double>(ceil_div(p.batch, d.multiprocessors) * trips);
    return kTiledLaunches * kLaunchUs + kGemvFirstTripUs + (row_trips - 1) * kGemvTripUs;
  }
  if (epilogue == Epilogue::kTiledLse) {
    const GemmTiling t = gemm_tiling(p.batch, p.in_channels, p.out_channels, static_cast<int64_t>(acc_bytes(p)),
                                     d.multiprocessors, d.shared_bytes_per_sm, bf16_tile_applies(output_bytes(p), d));
    const GemmTileShape& shape = kGemmTiles[t.tile];
    const double depth = gemm_depth(t.tile, static_cast<int>(acc_bytes(p)));
    const double rows = std::ceil(static_cast<double>(p.batch) / shape.rows) * shape.rows;
    const double cols = std::ceil(static_cast<double>(p.out_channels) / shape.cols) * shape.cols;
    const double channels = std::ceil(p.in_channels / depth) * depth;
    const double share = shape.mma                ? kTiledMmaShareOfPeak
                         : p.element_bytes == 8 ? kTiledFloat64ShareOfPeak
                                                : kTiledShareOfPeak;
    const double resident =
        static_cast<double>(d.multiprocessors) *
        gemm_blocks_per_sm(t.tile, static_cast<int>(acc_bytes(p)), d.shared_bytes_per_sm);
    const double sums = 2.0 * p.batch * p.in_channels * acc_bytes(p) / (d.read_gbps * 1e3 * kSplitTrafficShare);
    if (t.tile == kBf16MmaTile) {  // one channel range (gemm_tiling)
      const double products =
          2.0 * rows * cols * kBf16PieceSlots * channels / (d.bf16_gflops * 1e3 * kTiledBf16ShareOfPeak);
      const double lse = 2.0 * rows * cols * kLseFmas / (d.fp32_gflops * 1e3 * kTiledBf16LseShare);
      const double staging = std::ceil(t.blocks / resident) * channels * kBf16StageUsPerChannel;
      return kTiledLaunches * kLaunchUs + products + lse + staging + sums;
    }
    const double compute = 2.0 * rows * cols * (channels + kLseFmas) / (d.fp32_gflops * 1e3 * share);
    const double chain_us = t.tile == kThinTile
                                ? kTiledStepUs + (t.steps_per_block - 1) * kThinTileLaterStepUs
                                : t.steps_per_block * kTiledStepUs;
    const double latency = std::ceil(t.blocks / resident) * chain_us;
    // Split-K's partial logits, written and read back by bias_lse, its own launch.
    const double partials = t.k_splits > 1 ? kLaunchUs + 2.0 * t.k_splits * p.batch * p.out_channels * acc_bytes(p) /
                                                             (d.read_gbps * 1e3 * kSplitTrafficShare)
                                           : 0.0;
    return kTiledLaunches * kLaunchUs + std::max(compute, latency) + sums + partials;
  }
  if (bf16_pieces_apply(output_bytes(p), p.batch, p.in_channels, p.out_channels, d) &&
      cublas_k_splits(p.batch, p.in_channels, p.out_channels, d.multiprocessors) == 1) {
    const double depth = static_cast<double>(bf16_pieces_rounded(p.in_channels));
    const double columns = static_cast<double>(bf16_pieces_rounded(p.out_channels));
    const double pieces = kBf16PieceSlots * depth;
    const double logits_bytes = p.batch * columns * 4.0;
    const double gemm = std::max(2.0 * p.batch * pieces * columns / (d.bf16_gflops * 1e3 * kBf16PiecesShareOfPeak),
                                 logits_bytes / (d.read_gbps * 1e3 * kBf16PiecesWriteShare));
    const double traffic = (p.batch * (p.in_channels * 4.0 + 2 * pieces * 2.0) + logits_bytes) /
                           (d.read_gbps * 1e3 * kBf16PiecesTrafficShare);
    // The pieces kernels wait on the grid ahead of them by programmatic dependent launch: no launch of their own.
    return kCublasLaunches * kLaunchUs + gemm + traffic;
  }
  const double gemm = 2.0 * p.batch * std::max<double>(p.in_channels, kCublasMinTile) *
                      std::max<double>(p.out_channels, kCublasMinTile) / (peak_flops * kGemmShareOfPeak);
  const double traffic = 2.0 * p.batch * (p.in_channels + p.out_channels) * acc_bytes(p) /
                         (d.read_gbps * 1e3 * kSplitTrafficShare);
  return kCublasLaunches * kLaunchUs + gemm + traffic;
}

// Whether the split strategy's reader folds W.sum in its own launch: the channel-rows reader on channels-last x, for
// weights of up to kReaderFoldMaxWeightBytes (the host also asks for a contiguous weight, the usual case, which the
// problem does not describe).
bool reader_folds_weight(Reader reader, const Problem& p) {
  const double weight_bytes = static_cast<double>(p.in_channels) * p.out_channels * p.kernel_area * p.element_bytes;
  return reader == Reader::kChannelRows && p.layout == Layout::kChannelsLast &&
         weight_bytes <= kReaderFoldMaxWeightBytes;
}

double split_us(const Problem& p, const DeviceProps& d, Reader reader, Epilogue epilogue) {
  // Rows that are their own sums (no reader would run: Problem::x_in_epilogue false on one-element planes of the
  // accumulation type, the cropped GEMM's rows) with a weight that is its own W.sum: ops_cuda.cpp's
  // cropped_gemm_forward runs the epilogue alone on them. Counting the plane-lanes reader's pass too had put r52 of
  // the sweep at padding 1 over x's elements ([2079, 56658] -> 11 float32, the narrow epilogue) at 784 us on the
  // H100, where it ran in 266 (docs/limits.md section 110), so the padded forward kept the tap readers (320).
  if (!p.x_in_epilogue && p.height * p.width == 1 && weight_is_its_sum(p)) return epilogue_us(p, d, epilogue);
  if (reader == Reader::kInEpilogue) {
    // No reader launch. One-element planes: the tiled epilogue's steps wait on x's loads, and its GEMM runs while x is
    // read. Planes that the tensor-core tile sums first: its blocks read, then multiply, and the blocks of a
    // multiprocessor start together and stay in step, so the read and the GEMM add up (H200: r27's [180286, 25, 1,
    // 24] -> 413 in 602 us, its tile alone taking 376 after the plane-lanes reader's 326).
    const double weight = weight_is_its_sum(p) ? 0.0 : kLaunchUs + weight_us(p, d);
    if (epilogue == Epilogue::kNarrowLse) return weight + epilogue_us(p, d, epilogue, /*x_planes=*/true);
    if (p.height * p.width > 1) {
      return weight + read_us(x_bytes(p), d, kTilePlanesReadShare) + epilogue_us(p, d, Epilogue::kTiledLse);
    }
    return weight + std::max(reader_us(reader, p, d), epilogue_us(p, d, Epilogue::kTiledLse));
  }
  if (weight_is_its_sum(p)) return kLaunchUs + reader_us(reader, p, d) + epilogue_us(p, d, epilogue);
  const double weight_launch_us = reader_folds_weight(reader, p) ? 0.0 : kLaunchUs;
  return kLaunchUs + reader_us(reader, p, d) + weight_launch_us + weight_us(p, d) + epilogue_us(p, d, epilogue);
}

}  // namespace

bool weight_is_its_sum(const Problem& p) { return p.kernel_area == 1 && p.element_bytes == acc_bytes(p); }

bool tile_sums_planes(const Problem& p, const DeviceProps& d) {
  const int64_t plane = p.height * p.width;
  if (!p.x_in_epilogue || p.element_bytes != 8 || plane < 2 || plane > kTinyPlaneElements ||
      p.width < kTilePlanesMinWidth || p.width > kTilePlanesMaxWidth || p.in_channels > kTilePlanesMaxChannels ||
      (p.layout != Layout::kPlanes && p.layout != Layout::kStridedRows)) {
    return false;
  }
  const GemmTiling tiling =
      gemm_tiling(p.batch, p.in_channels, p.out_channels, 8, d.multiprocessors, d.shared_bytes_per_sm);
  return tiling.tile == kMmaTile && tiling.column_runs == 1 && tiling.k_splits == 1;
}

// Planes of 2 to kNarrowPlanesMaxElements elements (cuda/tuning.h) in strided rows or other layouts, which the
// plane-lanes reader also loads an element at a time (contiguous planes and planes of one element keep its vector and
// run walks, measured faster than a lane per plane). Its reason is r59 of the sweep ([9346, 1570, 3, 1] float64 -> 4,
// planes of one column 3 apart in planes of 4 x 3): the plane-lanes reader wrote its 117 MB of sums for the narrow
// epilogue to read back, and the forward took 581 us against the compiled shortcut's 573; summed by the narrow
// epilogue, 550 (H100, docs/limits.md sections 94-95). And 16-bit x's planes of one element in any layout, loaded as
// sums are (NarrowSource::kElementsInX: as many loads in flight, not a lane per plane): the plane-lanes reader writes
// 4 bytes of sums for each 2 of x, which the epilogue reads back. r22 of the sweep ([618884, 53, 1, 1] float16 -> 2):
// its forward 133.6 us that way, where a standalone GEMM reading x in place took 85.7 (H100, docs/limits.md §109).
bool narrow_reads_planes(const Problem& p, const DeviceProps& d) {
  const int64_t plane = p.height * p.width;
  const auto acc = static_cast<int64_t>(acc_bytes(p));
  const bool strided = p.layout == Layout::kStridedRows || p.layout == Layout::kOther;
  const bool planes = strided && plane >= 2 && plane <= kNarrowPlanesMaxElements;
  const bool elements = plane == 1 && p.element_bytes < acc;
  if (!p.x_in_epilogue || !(planes || elements) || !narrow_lse_applies(p.in_channels, p.out_channels, acc)) {
    return false;
  }
  // A one-element plane's load needs no registers beside it, so its kernel takes the channel ranges the sums' does
  // (elements_in_x); a plane's sum holds its loads too, and that kernel takes one range.
  return elements || narrow_lse_tiling(p.batch, p.in_channels, p.out_channels, acc, resident_threads(d)).k_splits == 1;
}

bool in_epilogue_applies(const Problem& p, const DeviceProps& d) {
  return (p.x_in_epilogue && p.height * p.width == 1 && p.element_bytes == acc_bytes(p)) ||
         tile_sums_planes(p, d);
}

GemmTiling gemm_tiling(int64_t batch, int64_t in_channels, int64_t out_channels, int64_t acc_bytes,
                       int64_t multiprocessors, int64_t shared_bytes_per_sm, bool bf16_tile) {
  int tile = out_channels <= 8 ? 0 : out_channels <= 32 ? 1 : out_channels <= 64 ? 2 : 3;
  const auto tiles = [&](int t) {
    return ceil_div(batch, kGemmTiles[t].rows) * ceil_div(out_channels, kGemmTiles[t].cols);
  };
  if (acc_bytes == 8 && tile >= 2) {  // tuning.h: float64 on tensor cores
    tile = kMmaTile;
  } else if (bf16_tile && acc_bytes == 4 && tile >= 2 && tiles(kBf16MmaTile) >= multiprocessors &&
             bf16_mma_fits(in_channels, shared_bytes_per_sm)) {
    // tuning.h: 16-bit x on bfloat16 tensor cores, where its tiles fill the device and two blocks' pieces of all
    // their channels fit a multiprocessor (no split-K: a block keeps its rows' pieces for its whole column run)
    tile = kBf16MmaTile;
  } else if (tile >= 2 && tiles(tile) < multiprocessors) {
    tile = kThinTile;
  }
  const int64_t row_tiles = ceil_div(batch, kGemmTiles[tile].rows);
  const int64_t col_tiles = ceil_div(out_channels, kGemmTiles[tile].cols);
  // Enough runs for every block slot: the tensor-core tile's three or four a multiprocessor where it takes the GEMM.
  const int64_t blocks_per_sm = gemm_blocks_per_sm(tile, static_cast<int>(acc_bytes), shared_bytes_per_sm);
  const int64_t run_slots = std::max<int64_t>(kGemmBlocksPerSm, blocks_per_sm);
  const int64_t runs = std::clamp<int64_t>(ceil_div(run_slots * multiprocessors, row_tiles), 1,
                                           std::min(col_tiles, kMaxGridY));
  const int64_t tiles_per_run = ceil_div(col_tiles, runs);
  const int64_t depth = gemm_depth(tile, static_cast<int>(acc_bytes));
  const int64_t steps = ceil_div(in_channels, depth);
  GemmTiling t{};
  t.tile = tile;
  t.column_runs = ceil_div(col_tiles, tiles_per_run);  // equal runs, none empty
  t.blocks = row_tiles * t.column_runs;
  t.steps_per_block = tiles_per_run * steps;
  // Split-K (tuning.h) where it shortens the longest chain of steps a resident block slot runs, waves x steps per
  // block, by kSplitMinSavedSteps or more; the shortest chain wins, the fewest splits among equals.
  const int64_t resident = blocks_per_sm * multiprocessors;
  const int64_t tile_count = row_tiles * col_tiles;
  const int64_t unsplit_chain = ceil_div(t.blocks, resident) * t.steps_per_block;
  int64_t best_chain = unsplit_chain;
  const int64_t most_splits = tile == kBf16MmaTile ? 1 : kGemmMaxSplits;
  for (int64_t splits = 2; splits <= most_splits && splits * kGemmMinSplitSteps <= steps &&
                           col_tiles <= kMaxGridY && splits * batch * out_channels <= kGemmMaxSplitValues;
       ++splits) {
    const int64_t split_steps = ceil_div(steps, splits);
    const int64_t chain = ceil_div(splits * tile_count, resident) * split_steps;
    if (chain < best_chain && chain <= unsplit_chain - kSplitMinSavedSteps) {
      best_chain = chain;
      t.k_splits = ceil_div(steps, split_steps);  // equal ranges, none empty
      t.split_channels = split_steps * depth;
    }
  }
  if (t.k_splits > 1) {
    t.column_runs = col_tiles;
    t.blocks = tile_count * t.k_splits;
    t.steps_per_block = t.split_channels / depth;
  }
  return t;
}

namespace {
// The plane-lanes reader's grid for `pieces` pieces of each of `planes` planes, a group of `lanes` lanes a piece.
int64_t plane_lanes_grid_blocks(int64_t planes, int64_t pieces, int64_t lanes) {
  return std::max<int64_t>(1, ceil_div(planes * pieces * lanes, kSplitThreads));
}
}  // namespace

PlaneLanesTiling plane_lanes_tiling(int64_t planes, int64_t units, int64_t resident_threads, int64_t units_per_lane) {
  PlaneLanesTiling t{};
  t.lanes = 1;
  for (int lanes : kPlaneLanesGroups) {
    if (units >= lanes * units_per_lane) t.lanes = lanes;
  }
  const int64_t resident_groups = std::max<int64_t>(1, resident_threads / t.lanes);
  const int64_t resident_blocks = std::max<int64_t>(1, resident_threads / kSplitThreads);
  const int64_t block_groups = kSplitThreads / t.lanes;
  const int64_t most_pieces = std::max<int64_t>(1, units / (t.lanes * kPlaneLanesPieceLoads));
  const int64_t wanted = ceil_div(kPlaneLanesItemsPerGroup * resident_groups, std::max<int64_t>(planes, 1));
  t.pieces = std::clamp<int64_t>(wanted, 1, most_pieces);
  // A block per plane, its groups the plane's pieces, where that fills between kBlockPerPlaneMinWave of the resident
  // blocks and all of them (tuning.h): one wave, no second launch.
  if (t.pieces > block_groups && most_pieces >= block_groups && planes <= resident_blocks &&
      static_cast<double>(planes) >= kBlockPerPlaneMinWave * static_cast<double>(resident_blocks)) {
    t.pieces = block_groups;
  }
  const int64_t forced_pieces = forced_plane_lanes_pieces.load(std::memory_order_relaxed);
  if (forced_pieces > 0) t.pieces = std::clamp<int64_t>(forced_pieces, 1, std::max<int64_t>(1, units / t.lanes));
  t.pieces_in_block = t.pieces > 1 && t.pieces <= block_groups;
  if (t.pieces_in_block) {
    // Rounded down to a power of two, which divides the block's groups (kSplitThreads / lanes, a power of two too):
    // then every block's turn of groups holds whole planes. Each piece still has kPlaneLanesPieceLoads loads a lane,
    // so none is empty. H200, against the second launch (same build otherwise, best of 2 rounds): r02 (8 pieces)
    // 19.3 -> 18.1 us; r41 and r57 (2 pieces; 3 before the rounding) 27.4 -> 27.6 and 157.8 -> 158.8.
    while ((t.pieces & (t.pieces - 1)) != 0) t.pieces &= t.pieces - 1;
    t.piece_units = ceil_div(units, t.pieces);
  } else {
    t.piece_units = std::max<int64_t>(1, ceil_div(units, t.pieces));
    t.pieces = std::max<int64_t>(1, ceil_div(units, t.piece_units));  // equal pieces, none empty
  }
  t.persistent = forced_plane_lanes_persistent.load(std::memory_order_relaxed) == 1;
  t.blocks = plane_lanes_grid_blocks(planes, t.pieces, t.lanes);
  if (t.persistent) t.blocks = std::min(t.blocks, resident_blocks);
  return t;
}

// r35 of the sweep (796 float64 planes of 88887, a block each, its 8 groups the plane's pieces; the vector walk's 64
// registers hold 528 blocks): 168.4 us in a wave and a half of blocks, 146.8 by 4 pieces a plane in 398 blocks and
// 147.3 by 2 in 199 (H200, forced pieces; docs/limits.md section 96). Before section 93 a persistent grid of the 528
// took 145.9 on another H200. H100, against the same build without the fit (section 100): r35 219.8 -> 207.1 us, and
// the 11 other public-sweep problems whose pieces it changes (some many waves past one) within 0.5%.
PlaneLanesTiling fit_pieces_to_wave(PlaneLanesTiling t, int64_t planes, int64_t units, int64_t kernel_blocks) {
  if (!t.pieces_in_block || t.persistent || kernel_blocks < 1 ||
      forced_plane_lanes_pieces.load(std::memory_order_relaxed) > 0) {
    return t;
  }
  while (t.pieces > 1 && t.blocks > kernel_blocks) {
    t.pieces /= 2;  // a power of two still, dividing the block's groups
    t.blocks = plane_lanes_grid_blocks(planes, t.pieces, t.lanes);
  }
  t.pieces_in_block = t.pieces > 1;
  t.piece_units = ceil_div(units, t.pieces);
  return t;
}

void force_plane_lanes_persistent(int persistent) {
  forced_plane_lanes_persistent.store(persistent, std::memory_order_relaxed);
}

void force_plane_lanes_pieces(int64_t pieces) { forced_plane_lanes_pieces.store(pieces, std::memory_order_relaxed); }

TinyPlaneWalk tiny_plane_walk(int64_t plane, int64_t element_bytes, int64_t run_planes, bool tiles_vectors) {
  const bool runs_apply = element_bytes <= kPlaneRunsMaxElementBytes;  // the run walk, and its whole vectors
  const bool vectors_apply = runs_apply && tiles_vectors;
  const bool staged_applies = plane * element_bytes <= kStagedMaxPlaneBytes && run_planes >= kStagedMinRunPlanes;
  const auto listed = [&](uint64_t sizes) { return plane >= 1 && plane < 64 && (sizes >> plane & 1) != 0; };
  const int forced = forced_walk.load(std::memory_order_relaxed);
  if (forced >= 0) {
    TinyPlaneWalk walk = static_cast<TinyPlaneWalk>(forced);
    if ((walk == TinyPlaneWalk::kVectorPlanes && !vectors_apply) ||
        (walk == TinyPlaneWalk::kStaged && !staged_applies)) {
      walk = TinyPlaneWalk::kRuns;
    }
    return walk == TinyPlaneWalk::kRuns && !runs_apply ? TinyPlaneWalk::kLanes : walk;
  }
  const uint64_t staged_faster = element_bytes == 2   ? kStagedWalkFaster16BitPlanes
                                 : element_bytes == 4 ? kStagedWalkFaster32BitPlanes
                                                      : kStagedWalkFaster64BitPlanes;
  if (staged_applies && run_planes * plane * element_bytes >= kStagedChosenMinRunBytes && listed(staged_faster)) {
    return TinyPlaneWalk::kStaged;
  }
  if (vectors_apply) return TinyPlaneWalk::kVectorPlanes;
  const uint64_t runs_faster = element_bytes == 2 ? kRunWalkFaster16BitPlanes : kRunWalkFaster32BitPlanes;
  return runs_apply && listed(runs_faster) ? TinyPlaneWalk::kRuns : TinyPlaneWalk::kLanes;
}

PlaneRunsTiling plane_runs_tiling(int64_t runs, int64_t run_planes, int64_t plane, int64_t element_bytes,
                                  TinyPlaneWalk walk, int64_t resident_threads) {
  PlaneRunsTiling t{};
  const int64_t vec = 16 / element_bytes, acc_bytes = element_bytes == 8 ? 8 : 4;
  const int64_t resident_blocks = std::max<int64_t>(1, resident_threads / kSplitThreads);
  if (walk == TinyPlaneWalk::kStaged) {  // tiles of up to kStagedTileBytes, as many planes for each thread
    t.item_planes = kSplitThreads * std::max<int64_t>(1, kStagedTileBytes / (kSplitThreads * plane * element_bytes));
    t.run_items = ceil_div(run_planes, t.item_planes);
    t.blocks = std::clamp<int64_t>(runs * t.run_items, 1, resident_blocks);
    return t;
  }
  if (walk == TinyPlaneWalk::kVectorPlanes) {  // items of kPlaneRunsItemVectors whole vectors from a run's first
    const int64_t per_vector = vec / plane;
    t.item_planes = kPlaneRunsItemVectors * per_vector;
    t.run_items = ceil_div(per_vector - 1 + run_planes, t.item_planes);
    t.blocks = std::clamp<int64_t>(ceil_div(runs * t.run_items, kSplitThreads), 1, resident_blocks);
    return t;
  }
  const int64_t planes = runs * run_planes;
  // Planes of about kPlaneRunsItemVectors vectors, at most kPlaneRunsMaxItemSumBytes of sums, at most a run, and few
  // enough that each resident thread gets kPlaneRunsItemsPerThread items.
  int64_t item_planes = (kPlaneRunsItemVectors * vec + plane / 2) / std::max<int64_t>(plane, 1);
  item_planes = std::min({item_planes, kPlaneRunsMaxItemSumBytes / acc_bytes, run_planes,
                          planes / (kPlaneRunsItemsPerThread * std::max<int64_t>(resident_threads, 1))});
  t.item_planes = std::max<int64_t>(item_planes, 1);
  t.run_items = ceil_div(run_planes, t.item_planes);
  t.blocks = std::clamp<int64_t>(ceil_div(runs * t.run_items, kSplitThreads), 1, resident_blocks);
  return t;
}

bool rows_lse_applies(int64_t in_channels, int64_t out_channels, int64_t acc_bytes) {
  if (in_channels < 1 || in_channels > kRowsLseMaxChannels || out_channels < 1) return false;
  return rows_lse_shared_bytes(in_channels, out_channels, acc_bytes, 1) <= kRowsLseMaxSharedBytes;
}

RowsLseTiling rows_lse_tiling(int64_t batch, int64_t in_channels, int64_t out_channels, int64_t acc_bytes,
                              int64_t resident_threads) {
  RowsLseTiling t{};
  const int64_t chunks = ceil_div(out_channels, kRowsLseChunk);
  t.lanes = 1;
  const double fill = kRowsLseFillShare * static_cast<double>(resident_threads);
  while (t.lanes < 32 && 2 * t.lanes <= chunks && static_cast<double>(batch * t.lanes) < fill) t.lanes *= 2;
  t.shared_bytes = rows_lse_shared_bytes(in_channels, out_channels, acc_bytes, t.lanes);
  return t;
}

bool bf16_tile_applies(int64_t output_bytes, const DeviceProps& d) {
  return output_bytes == 2 && d.bf16_gflops >= kBf16PiecesMinTensorRate * d.fp32_gflops;
}

bool bf16_pieces_apply(int64_t element_bytes, int64_t rows, int64_t channels, int64_t c_out, const DeviceProps& d) {
  if (std::min(rows, c_out) < kBf16PiecesMinSide) return false;
  if (channels < kBf16PiecesMinSide &&
      (channels < kBf16PiecesMinChannels || rows * channels * c_out < kBf16PiecesMinFma)) {
    return false;
  }
  return bf16_tile_applies(element_bytes, d);
}

int64_t cublas_k_splits(int64_t batch, int64_t in_channels, int64_t out_channels, int64_t multiprocessors) {
  const int64_t tiles = ceil_div(batch, kCublasTileRows) * ceil_div(out_channels, kCublasTileCols);
  if (tiles >= multiprocessors || out_channels >= kCublasSplitMaxColumns) return 1;
  const int64_t most =
      std::min(kCublasSplitBlocksPerSm * multiprocessors / tiles, in_channels / kCublasSplitMinChannels);
  for (int64_t splits = most; splits >= 2; --splits) {
    if (in_channels % splits == 0) return splits;  // equal slices: one strided batched GEMM
  }
  return 1;
}

int channel_slices(int64_t channels, int64_t out_channels, int64_t threads) {
  int slices = 1;
  while (2 * slices <= threads / std::clamp<int64_t>(out_channels, 1, threads) && 2 * slices <= channels) slices *= 2;
  return slices;
}

GemvLseTiling gemv_lse_tiling(int64_t channels, int64_t out_channels, int64_t acc_bytes) {
  const GemvLseTiling block = gemv_block_tiling(kSplitThreads, channels, out_channels, acc_bytes);
  const GemvLseTiling wide = gemv_block_tiling(kGemvWideThreads, channels, out_channels, acc_bytes);
  return wide.trips < block.trips ? wide : block;
}

// The narrow epilogue's channel ranges for C_in: the fewest whose transposed W.sum and biases fit
// kNarrowLseMaxSharedBytes.
int64_t narrow_lse_ranges(int64_t in_channels, int columns, int64_t acc_bytes) {
  const int64_t most_channels = kNarrowLseMaxSharedBytes / (columns * acc_bytes) - 1;
  return ceil_div(in_channels, most_channels);
}

bool narrow_lse_applies(int64_t in_channels, int64_t out_channels, int64_t acc_bytes) {
  if (in_channels < 1 || out_channels < 1 || out_channels > kNarrowLseMaxColumns) return false;
  return narrow_lse_ranges(in_channels, narrow_lse_columns(out_channels), acc_bytes) <= kMaxGridY;
}

NarrowLseTiling narrow_lse_tiling(int64_t batch, int64_t in_channels, int64_t out_channels, int64_t acc_bytes,
                                  int64_t resident_threads) {
  NarrowLseTiling t{};
  t.columns = narrow_lse_columns(out_channels);
  t.k_splits = narrow_lse_ranges(in_channels, t.columns, acc_bytes);
  t.split_channels = ceil_div(in_channels, t.k_splits);  // equal ranges, none empty
  t.k_splits = ceil_div(in_channels, t.split_channels);
  const double groups = static_cast<double>(ceil_div(batch, narrow_lse_rows(t.columns)) * t.k_splits);
  const bool few_groups = groups * 8 < kNarrowLseFillShare * static_cast<double>(resident_threads);
  t.lanes = few_groups && t.split_channels >= kNarrowLseWideGroupChannels ? 32 : 8;
  t.shared_bytes = narrow_lse_shared_bytes(t.split_channels, t.columns, acc_bytes);
  return t;
}

namespace {
// A batch's `pixels` in t.chunks equal chunks of t.chunk_pixels, none empty: `wanted` of them where each keeps at
// least min_pixels, fewer where not, one at least.
void cut_into_chunks(ChannelRowsTiling& t, int64_t pixels, int64_t wanted, int64_t min_pixels) {
  t.chunks = std::clamp<int64_t>(wanted, 1, std::max<int64_t>(1, pixels / min_pixels));
  t.chunk_pixels = std::max<int64_t>(1, ceil_div(pixels, t.chunks));
  t.chunks = std::max<int64_t>(1, ceil_div(pixels, t.chunk_pixels));
}

// The channel-rows reader's block per chunk (its scalar and vector walks): chunks of at least min_pixels until every
// resident block has kChannelRowsItemsPerBlock items; blocks at most resident_blocks.
void cut_into_block_chunks(ChannelRowsTiling& t, int64_t batch, int64_t pixels, int64_t min_pixels,
                           int64_t resident_blocks) {
  cut_into_chunks(t, pixels, ceil_div(kChannelRowsItemsPerBlock * resident_blocks, std::max<int64_t>(batch, 1)),
                  min_pixels);
  t.blocks = std::clamp<int64_t>(batch * t.chunks, 1, std::max<int64_t>(resident_blocks, 1));
}
}  // namespace

ChannelRowsTiling channel_rows_tiling(int64_t batch, int64_t channels, int64_t pixels, int64_t resident_blocks) {
  ChannelRowsTiling t{};
  const bool narrow = channels <= kSplitThreads;
  t.rows_per_step = narrow ? static_cast<int>(kSplitThreads / std::max<int64_t>(channels, 1)) : 1;
  // Pixels that give each thread kChannelRowsMinLoads loads: one per step of rows_per_step pixels (narrow), or one
  // per channel it takes of every pixel (wide).
  const int64_t min_pixels = narrow ? kChannelRowsMinLoads * t.rows_per_step
                                    : ceil_div(kChannelRowsMinLoads, ceil_div(channels, kSplitThreads));
  cut_into_block_chunks(t, batch, pixels, min_pixels, resident_blocks);
  return t;
}

ChannelVectorsPeriod channel_vectors_period(int64_t channels, int64_t vector_elements, int64_t acc_bytes) {
  ChannelVectorsPeriod period{};
  if (channels < 1 || vector_elements < 1 || acc_bytes < 1) return period;
  const int64_t vectors = channels / std::gcd(channels, vector_elements);
  const int64_t copy_bytes = vectors * vector_elements * acc_bytes;
  if (copy_bytes > kChannelVectorsMaxSharedBytes) return period;
  period.period_vectors = vectors;
  period.copies = std::max<int64_t>(1, std::min(kChannelVectorsMaxSharedBytes / copy_bytes, kSplitThreads / vectors));
  period.shared_bytes = period.copies * copy_bytes;
  return period;
}

bool pixel_vectors_walk(const Problem& p) {
  const int64_t plane = p.height * p.width, pixel_bytes = p.in_channels * p.element_bytes;
  if (p.layout != Layout::kChannelsLast || !p.pixel_vectors) return false;
  if (p.element_bytes == 8) {
    return p.in_channels >= kPixelVectorsFloat64MinChannels && p.in_channels * 8 % kPixelVectorsFloat64LineBytes == 0 &&
           plane >= kChannelRowsMinPixels;
  }
  return p.element_bytes <= 4 && plane >= 2 && plane <= kPixelVectorsMaxPixels &&
         p.batch * pixel_bytes / 16 >= kPixelVectorsMinItems &&
         (pixel_bytes >= kPixelVectorsMinPixelBytes || plane <= kPixelVectorsAnyPixelsMaxPlane);
}

namespace {
// The fewest pixels a chunk of the vector walk takes: kChannelVectorsMinLoads vectors for each of its `slots` slots.
int64_t channel_vectors_min_pixels(int64_t channels, int64_t vector_elements, int64_t slots) {
  return std::max<int64_t>(1, ceil_div(std::max<int64_t>(slots, 1) * kChannelVectorsMinLoads * vector_elements,
                                       std::max<int64_t>(channels, 1)));
}

// The fewest pixels a chunk of p's vector walk takes (channel_vectors_min_pixels), or 0 where the walk does not apply
// (channel_vectors_apply): one place for its period and chunk, which both ask.
int64_t channel_vectors_chunk_pixels(const Problem& p) {
  if (p.layout != Layout::kChannelsLast || !p.pixels_follow || p.element_bytes > 4 ||
      p.in_channels < kChannelVectorsMinChannels) {
    return 0;
  }
  const int64_t vector_elements = 16 / p.element_bytes;
  const ChannelVectorsPeriod period =
      channel_vectors_period(p.in_channels, vector_elements, static_cast<int64_t>(acc_bytes(p)));
  if (period.period_vectors == 0) return 0;
  const int64_t min_pixels =
      channel_vectors_min_pixels(p.in_channels, vector_elements, period.period_vectors * period.copies);
  return p.height * p.width >= min_pixels ? min_pixels : 0;
}
}  // namespace

bool channel_vectors_apply(const Problem& p) { return channel_vectors_chunk_pixels(p) > 0; }

int64_t channel_vectors_blocks(const Problem& p) {
  const int64_t min_pixels = channel_vectors_chunk_pixels(p);
  return min_pixels > 0 ? p.batch * (p.height * p.width / min_pixels) : 0;
}

ChannelRowsTiling channel_vectors_tiling(int64_t batch, int64_t channels, int64_t pixels, int64_t vector_elements,
                                         int64_t slots, int64_t resident_blocks) {
  ChannelRowsTiling t{};
  t.rows_per_step = 1;
  cut_into_block_chunks(t, batch, pixels, channel_vectors_min_pixels(channels, vector_elements, slots),
                        resident_blocks);
  return t;
}

bool pixel_vectors_chunked(int64_t pixels) { return pixels > kPixelVectorsMaxPixels; }

ChannelRowsTiling pixel_vectors_tiling(int64_t batch, int64_t channels, int64_t pixels, int64_t vector_elements,
                                       int64_t resident_blocks) {
  const int64_t columns = std::max<int64_t>(1, batch * (channels / std::max<int64_t>(vector_elements, 1)));
  ChannelRowsTiling t{1, 1, std::max<int64_t>(pixels, 1), 1};
  if (pixel_vectors_chunked(pixels)) {
    // At most one item a resident thread: a grid-stride loop's second pass for a few items doubled the walk's time
    // (r23's 19 x 686 x 613 grid neighbour: 50.8 us against 36.2 for torch's reduction, H200, section 74).
    cut_into_chunks(t, pixels, std::max<int64_t>(resident_blocks, 1) * kSplitThreads / columns,
                    kPixelVectorsMinChunkPixels);
  }
  t.blocks = std::clamp<int64_t>(ceil_div(columns * t.chunks, kSplitThreads), 1, std::max<int64_t>(resident_blocks, 1));
  return t;
}

Reader reader_for_sums(const Problem& p) {
  const int64_t plane = p.height * p.width;
  if (p.layout == Layout::kStridedRows || p.layout == Layout::kPlanes) return Reader::kPlaneLanes;
  if (pixel_vectors_walk(p)) return Reader::kChannelRows;
  if (plane <= kTinyPlaneElements) {
    const bool lanes_suit = plane == 1 || !(p.layout == Layout::kChannelsLast && p.pixels_follow) ||
                            (plane * p.element_bytes >= kTinyLanesMinPlaneBytes &&
                             p.in_channels * p.element_bytes >= kTinyLanesMinPixelBytes);
    return lanes_suit ? Reader::kPlaneLanes : Reader::kTorchSum;
  }
  return channel_rows_suits(p) ? Reader::kChannelRows : Reader::kTorchSum;
}

bool evict_first_loads(int64_t bytes, const DeviceProps& device) {
  return static_cast<double>(bytes) <= kEvictFirstMaxL2Share * static_cast<double>(device.l2_bytes);
}

Plan choose(const Problem& p, const DeviceProps& d) {
  Plan plan{};
  plan.evict_first = evict_first_loads(p.batch * p.in_channels * p.height * p.width * p.element_bytes, d);
  plan.weight_is_its_sum = weight_is_its_sum(p);
  plan.split_reader = reader_for_sums(p);
  plan.tiled_us = epilogue_us(p, d, Epilogue::kTiledLse);
  const GemmTiling tiling =
      gemm_tiling(p.batch, p.in_channels, p.out_channels, static_cast<int64_t>(acc_bytes(p)), d.multiprocessors,
                  d.shared_bytes_per_sm, bf16_tile_applies(output_bytes(p), d));
  plan.tiled_k_splits = tiling.k_splits;
  plan.tiled_tile = tiling.tile;
  plan.cublas_us = epilogue_us(p, d, Epilogue::kCublasLse);
  plan.cublas_k_splits = cublas_k_splits(p.batch, p.in_channels, p.out_channels, d.multiprocessors);
  plan.epilogue = plan.tiled_us <= plan.cublas_us ? Epilogue::kTiledLse : Epilogue::kCublasLse;
  double chosen_us = std::min(plan.tiled_us, plan.cublas_us);
  const auto take_if_cheaper = [&](Epilogue epilogue, double us) {
    if (us < chosen_us) {
      plan.epilogue = epilogue;
      chosen_us = us;
    }
  };
  const bool rows_apply = rows_lse_applies(p.in_channels, p.out_channels, static_cast<int64_t>(acc_bytes(p)));
  plan.rows_us = rows_apply ? epilogue_us(p, d, Epilogue::kRowsLse) : std::numeric_limits<double>::infinity();
  take_if_cheaper(Epilogue::kRowsLse, plan.rows_us);
  const bool narrow_applies =
      narrow_lse_applies(p.in_channels, p.out_channels, static_cast<int64_t>(acc_bytes(p)));
  plan.narrow_us =
      narrow_applies ? epilogue_us(p, d, Epilogue::kNarrowLse) : std::numeric_limits<double>::infinity();
  plan.narrow_k_splits = narrow_applies ? narrow_lse_tiling(p.batch, p.in_channels, p.out_channels,
                                                            static_cast<int64_t>(acc_bytes(p)), resident_threads(d))
                                              .k_splits
                                        : 1;
  // Where the rows epilogue applies it stays (its few channels need no reduction across lanes): on the two problems
  // measured with both it was the faster (H200: r53 20.7 us against 22.3, r07 51.3 against 52.4), where the model put
  // the narrow one ahead by 1-3 us. Since the narrow epilogue's reduce-scatter (874017c) r07 goes the other way (46.5
  // narrow against 47.8 rows) and r53 not (22.2 against 21.4): too few measurements to refit the rule on.
  if (!rows_apply) take_if_cheaper(Epilogue::kNarrowLse, plan.narrow_us);
  plan.gemv_us = epilogue_us(p, d, Epilogue::kGemvLse);
  take_if_cheaper(Epilogue::kGemvLse, plan.gemv_us);
  const int epilogue = forced_epilogue.load(std::memory_order_relaxed);
  if (epilogue >= 0) plan.epilogue = static_cast<Epilogue>(epilogue);
  // A forced epilogue that cannot take the problem: the tiled one, which takes any.
  if ((plan.epilogue == Epilogue::kRowsLse && !rows_apply) ||
      (plan.epilogue == Epilogue::kNarrowLse && !narrow_applies)) {
    plan.epilogue = Epilogue::kTiledLse;
  }
  plan.split_us = split_us(p, d, plan.split_reader, plan.epilogue);
  // x's one-element planes read by the tiled epilogue itself, or its planes summed by the tensor-core tile
  // (tile_sums_planes), where that is the epilogue (and no reader is forced).
  // H200, the forward with the plane-lanes reader before the tiled epilogue against the tiled epilogue reading x (us;
  // x sliced from planes of 2 x 3 unless named): float32 [50000, 16] -> 1000 97.5 -> 95.6, contiguous [20000, 64] ->
  // 300 58.9 -> 52.4, float64 [180286, 25] -> 413 592.3 -> 573.6, [2328, 657] -> 61 50.5 -> 46.0, [300, 2000] -> 100
  // 47.7 -> 31.2, [4096, 1024] -> 256 169.9 -> 122.7, [100000, 100] -> 40 254.9 -> 183.0. Where cuBLAS's epilogue
  // is the choice it stays: it was the faster on r43 ([2328, 657] -> 61: 43.3), [300, 2000] -> 100 (28.0) and float32
  // [20000, 300] -> 500 (214.4 against 266.1), the slower on [100000, 100] -> 40 (212.8), and the cost model, which
  // puts the tiled kernel's time beside the read's, cannot tell these apart (docs/limits.md §58).
  // The narrow epilogue summing x's tiny planes itself, where it is the epilogue: the model puts it ahead wherever it
  // applies (no reader launch, no sums written and read back). Loading 16-bit x's one-element planes itself, also
  // where the rows epilogue was chosen above (not forced) and the model puts the narrow one reading x ahead of it and
  // its reader: the epilogues were weighed on reading sums, and the rows epilogue cannot read x. H100, [1000000, 16]
  // bfloat16 -> 4 channels-last (plan_changes.py's e02): 80.9 us by the plane-lanes reader and the rows epilogue,
  // 60.2 by the narrow one reading x. Not against the tiled epilogue, whose plan the model put behind but ran faster
  // on [300000, 40] bfloat16 -> 32 (e04): 105.2 us with its reader, 109.9 by the narrow epilogue reading x
  // (docs/limits.md §110).
  const bool x_in_tiled = in_epilogue_applies(p, d) && plan.epilogue == Epilogue::kTiledLse;
  const bool one_element = p.height * p.width == 1;
  const bool x_in_narrow =
      narrow_reads_planes(p, d) && (plan.epilogue == Epilogue::kNarrowLse ||
                                    (one_element && epilogue < 0 && plan.epilogue == Epilogue::kRowsLse));
  if (forced_reader.load(std::memory_order_relaxed) < 0) {
    const auto take_in_epilogue_if_cheaper = [&](bool applies, Epilogue in_epilogue) {
      if (!applies) return;
      const double in_epilogue_us = split_us(p, d, Reader::kInEpilogue, in_epilogue);
      if (in_epilogue_us < plan.split_us) {
        plan.epilogue = in_epilogue;
        plan.split_reader = Reader::kInEpilogue;
        plan.split_us = in_epilogue_us;
      }
    };
    take_in_epilogue_if_cheaper(x_in_tiled, Epilogue::kTiledLse);
    take_in_epilogue_if_cheaper(x_in_narrow, Epilogue::kNarrowLse);
  }
  const char* excluded = fused_excluded(p, d);
  plan.fused_us = excluded ? std::numeric_limits<double>::infinity() : fused_us(p, d);
  const int strategy = forced_strategy.load(std::memory_order_relaxed);
  if (strategy >= 0) {
    plan.strategy = static_cast<Strategy>(strategy);
    const int reader = forced_reader.load(std::memory_order_relaxed);
    if (plan.strategy == Strategy::kSplit && reader >= 0) {
      plan.split_reader = static_cast<Reader>(reader);
      if (plan.split_reader == Reader::kPlanes && !in_place_for_planes(p.layout)) {
        plan.split_reader = Reader::kCopyThenPlanes;
      }
      // The tiled epilogue reading x, forced (or the narrow one, where that is the epilogue and it can): where it
      // cannot, the reader the planner would take.
      if (plan.split_reader == Reader::kInEpilogue &&
          !(plan.epilogue == Epilogue::kNarrowLse && narrow_reads_planes(p, d))) {
        if (in_epilogue_applies(p, d)) {
          plan.epilogue = Epilogue::kTiledLse;
        } else {
          plan.split_reader = reader_for_sums(p);
        }
      }
      plan.split_us = split_us(p, d, plan.split_reader, plan.epilogue);
    }
    if (plan.strategy == Strategy::kFused) plan.fused_us = fused_us(p, d);
    plan.why = "forced (planning.forced_plan, for measurements)";
  } else if (plan.fused_us <= plan.split_us) {
    plan.strategy = Strategy::kFused;
    plan.why = "one launch: the epilogue is small and x is read in place";
  } else {
    plan.strategy = Strategy::kSplit;
    plan.why = excluded ? excluded : "separate launches are predicted faster";
  }
  if (plan.strategy == Strategy::kFused) {
    plan.reader = in_place_for_planes(p.layout) ? Reader::kPlanes : Reader::kCopyThenPlanes;
  } else {
    plan.reader = plan.split_reader;
  }
  plan.predicted_us = plan.strategy == Strategy::kFused ? plan.fused_us : plan.split_us;
  return plan;
}

std::string to_json(const Plan& plan, const Problem& p, const DeviceProps& d) {
  char fused[32], rows[32], narrow[32];
  const auto number_or_null = [](char (&text)[32], double value) {
    if (std::isfinite(value)) {
      std::snprintf(text, sizeof(text), "%.3f", value);
    } else {
      std::snprintf(text, sizeof(text), "null");
    }
  };
  number_or_null(fused, plan.fused_us);
  number_or_null(rows, plan.rows_us);
  number_or_null(narrow, plan.narrow_us);
  const GemvLseTiling gemv = gemv_lse_tiling(p.in_channels, p.out_channels, static_cast<int64_t>(acc_bytes(p)));
  char text[2048];
  std::snprintf(text, sizeof(text),
                "{\"strategy\": \"%s\", \"reader\": \"%s\", \"predicted_us\": %.3f, \"fused_us\": %s, "
                "\"split_us\": %.3f, \"split_reader\": \"%s\", \"epilogue\": \"%s\", \"tiled_us\": %.3f, "
                "\"tiled_k_splits\": %lld, \"tiled_tile\": %d, \"cublas_us\": %.3f, \"cublas_k_splits\": %lld, "
                "\"rows_us\": %s, "
                "\"narrow_us\": %s, \"narrow_k_splits\": %lld, "
                "\"gemv_us\": %.3f, \"gemv_threads\": %lld, \"gemv_trips\": %lld, "
                "\"copies_x\": %s, \"x_loads\": \"%s\", "
                "\"weight_sum\": \"%s\", \"why\": \"%s\", "
                "\"problem\": {\"batch\": %lld, \"in_channels\": %lld, \"out_channels\": %lld, \"height\": %lld, "
                "\"width\": %lld, \"element_bytes\": %lld, \"layout\": \"%s\", \"kernel_area\": %lld, "
                "\"plane_runs\": %s, \"planes_aligned\": %s, \"pixels_follow\": %s, \"pixel_vectors\": %s}, "
                "\"device\": {\"multiprocessors\": %lld, \"l2_bytes\": %lld, \"shared_bytes_per_sm\": %lld, "
                "\"warps_per_sm\": %lld, \"read_gbps\": %.1f, \"fp32_gflops\": %.1f, \"bf16_gflops\": %.1f}}",
                name(plan.strategy), name(plan.reader), plan.predicted_us, fused, plan.split_us,
                name(plan.split_reader), name(plan.epilogue), plan.tiled_us,
                static_cast<long long>(plan.tiled_k_splits), plan.tiled_tile, plan.cublas_us,
                static_cast<long long>(plan.cublas_k_splits), rows, narrow,
                static_cast<long long>(plan.narrow_k_splits), plan.gemv_us, static_cast<long long>(gemv.threads),
                static_cast<long long>(gemv.trips),
                plan.reader == Reader::kCopyThenPlanes ? "true" : "false",
                plan.evict_first ? "evict_first" : "cached", plan.weight_is_its_sum ? "weight" : "summed",
                plan.why.c_str(),
                static_cast<long long>(p.batch), static_cast<long long>(p.in_channels),
                static_cast<long long>(p.out_channels), static_cast<long long>(p.height),
                static_cast<long long>(p.width), static_cast<long long>(p.element_bytes), name(p.layout),
                static_cast<long long>(p.kernel_area), p.plane_runs ? "true" : "false",
                p.planes_aligned ? "true" : "false", p.pixels_follow ? "true" : "false",
                p.pixel_vectors ? "true" : "false",
                static_cast<long long>(d.multiprocessors), static_cast<long long>(d.l2_bytes),
                static_cast<long long>(d.shared_bytes_per_sm), static_cast<long long>(d.warps_per_sm), d.read_gbps,
                d.fp32_gflops, d.bf16_gflops);
  return text;
}

void force_walk(int walk) { forced_walk.store(walk, std::memory_order_relaxed); }

int64_t channel_walk_slices(int64_t channels, int64_t element_bytes) {
  const int64_t fewest = ceil_div(channels, int64_t{32});
  const int64_t forced = forced_channel_slices.load(std::memory_order_relaxed);
  if (forced > 0) return std::clamp(forced, fewest, channels);
  const int64_t least_lanes = std::min(channels, ceil_div(kChannelWalkMinGroupBytes, element_bytes));
  int64_t best = fewest;
  double best_loads = std::numeric_limits<double>::infinity();
  for (int64_t slices = fewest; slices <= channels; ++slices) {
    const int64_t lanes = ceil_div(channels, slices);
    if (lanes < least_lanes) break;  // fewer lanes with every further slice
    const double loads = static_cast<double>(slices) / channel_walk_position_groups(lanes);
    if (loads < best_loads) best = slices, best_loads = loads;
  }
  return best;
}

void force_channel_slices(int64_t slices) { forced_channel_slices.store(slices, std::memory_order_relaxed); }

int32_t channel_walk_position_groups(int64_t lanes) {
  int32_t groups = 1;
  while (2 * groups * lanes <= 32) groups *= 2;
  return groups;
}

bool channel_walk_by_rows(int64_t channels, int64_t width, int64_t element_bytes) {
  const int64_t lanes = ceil_div(channels, channel_walk_slices(channels, element_bytes));
  return channel_walk_position_groups(lanes) == 1 && element_bytes == 4 && width >= kChannelRowsMinColumns;
}

int64_t tap_run_chunks(int64_t height, int64_t row_bytes, int64_t units, int64_t resident_warps) {
  units = std::max<int64_t>(units, 1);
  resident_warps = std::max<int64_t>(resident_warps, 1);
  const int64_t wanted = std::clamp<int64_t>(ceil_div(kTapWarpsPerResidentWarp * resident_warps, units), 1, height);
  const double unit_bytes = static_cast<double>(height) * static_cast<double>(row_bytes);
  // The most runs (at most `wanted`) none of which is shorter than `least_run` bytes, the unit whole if shorter.
  const auto runs_no_shorter_than = [&](int64_t least_run) {
    if (least_run == 0) return wanted;
    return std::min(wanted, static_cast<int64_t>(std::clamp(unit_bytes / static_cast<double>(least_run), 1.0,
                                                            static_cast<double>(height))));
  };
  const int64_t forced = forced_tap_min_run_bytes.load(std::memory_order_relaxed);
  if (forced >= 0) return runs_no_shorter_than(forced);
  // Each run a warp, the warps in waves of resident_warps: the reader takes about its waves times a run's time (its
  // bytes and kTapRunFixedBytes). The best count for a number of waves is the most runs that fit them, so only those
  // are weighed, from the fewest waves up (a tie keeps the longer runs).
  const int64_t fewest = runs_no_shorter_than(kTapLongRunBytes), most = runs_no_shorter_than(kTapMinRunBytes);
  int64_t best = fewest;
  double best_cost = std::numeric_limits<double>::infinity();
  for (int64_t waves = ceil_div(units * fewest, resident_warps); waves <= ceil_div(units * most, resident_warps);
       ++waves) {
    const int64_t runs = std::min(most, waves * resident_warps / units);
    const double cost = static_cast<double>(waves) *
                        (unit_bytes / static_cast<double>(runs) + static_cast<double>(kTapRunFixedBytes));
    if (cost < best_cost) best = runs, best_cost = cost;
  }
  return best;
}

void force_tap_min_run_bytes(int64_t bytes) { forced_tap_min_run_bytes.store(bytes, std::memory_order_relaxed); }

bool tap_rows_staged(bool whole_vector_rows, int64_t width, int64_t element_bytes) {
  if (width <= 1) return false;  // a column: the span walk adds its vectors whole
  const int forced = forced_tap_stage.load(std::memory_order_relaxed);
  if (forced >= 0) return forced == 1;
  return !whole_vector_rows && width * element_bytes <= kTapStageMaxRowBytes;
}

void force_tap_stage(int stage) { forced_tap_stage.store(stage, std::memory_order_relaxed); }

bool tap_middle_by_span(bool whole_vector_rows, int64_t width, int64_t element_bytes, int64_t head, int64_t tail) {
  // The kernel has the walk for borders in registers alone (cuda/taps.cu: border_side 1 and 2).
  static_assert(kTapSpanSumMaxBorderSide >= 1 && kTapSpanSumMaxBorderSide <= 2);
  if (width <= head + tail || std::max(head, tail) > kTapSpanSumMaxBorderSide) return false;
  const int forced = forced_tap_middle_by_span.load(std::memory_order_relaxed);
  if (forced >= 0) return forced == 1;
  return !whole_vector_rows && width * element_bytes >= kTapSpanSumMinRowBytes &&
         width >= kTapSpanSumMinWidthPerBorderColumn * (head + tail);
}

bool tap_staged_span_sums(int64_t width, int64_t head, int64_t tail) {
  if (width <= head + tail) return false;
  const int forced = forced_tap_middle_by_span.load(std::memory_order_relaxed);
  if (forced >= 0) return forced == 1;
  return width >= kStagedSpanSumMinWidthPerBorderColumn * (head + tail);
}

void force_tap_middle_by_span(int by_span) {
  forced_tap_middle_by_span.store(by_span, std::memory_order_relaxed);
}

int32_t tap_combine_lanes(int64_t planes, int64_t multiprocessors, int64_t warps_per_sm) {
  const int forced = forced_tap_combine_lanes.load(std::memory_order_relaxed);
  if (forced > 0) return forced;
  if (planes < multiprocessors * kTapGroupCombineMinPlanesPerSm) return 32;
  const int64_t resident_lanes = multiprocessors * warps_per_sm * 32;
  int32_t lanes = 1;
  while (lanes < kTapGroupCombineMaxLanes && planes * lanes < resident_lanes) lanes *= 2;
  return lanes;
}

void force_tap_combine_lanes(int lanes) { forced_tap_combine_lanes.store(lanes, std::memory_order_relaxed); }

bool tap_combine_own_taps(int32_t lanes) { return lanes <= kTapOwnTapsMaxLanes; }

int64_t tap_combine_warps(int64_t multiprocessors) {
  return multiprocessors * kTapCombineBlocksPerSm * kWarpsPerBlock;
}

bool tap_shares_short(int64_t planes, int64_t c_out, int64_t taps, int64_t acc_bytes, int64_t multiprocessors) {
  const int forced = forced_tap_shares.load(std::memory_order_relaxed);
  if (forced >= 0) return forced == 1;
  // Every column of a plane, those outside its group too (tap_combine_kernel stores their zeros).
  const int64_t trips =
      ceil_div(c_out, int64_t{32} * tap_share_columns(acc_bytes)) * ceil_div(taps, int64_t{kTapShareTaps});
  return planes <= tap_combine_warps(multiprocessors) && trips <= kTapSharesMaxTrips;
}

void force_tap_shares(int shares) { forced_tap_shares.store(shares, std::memory_order_relaxed); }

void force_element_gemm(int elements) { forced_element_gemms.store(elements, std::memory_order_relaxed); }

int forced_element_gemm() { return forced_element_gemms.load(std::memory_order_relaxed); }

TapWeightWay tap_weight_way(bool reader_beside, int64_t x_bytes, int64_t weight_bytes) {
  const int forced = forced_tap_weight_way.load(std::memory_order_relaxed);
  if (forced >= 0) return static_cast<TapWeightWay>(forced);
  if (reader_beside) return x_bytes <= kTapWeightBesideMaxXBytes ? TapWeightWay::kAheadBeside : TapWeightWay::kCopy;
  return weight_bytes <= kTapWeightAheadMaxRowsBytes ? TapWeightWay::kAheadWaits : TapWeightWay::kCopy;
}

void force_tap_weight_way(int way) { forced_tap_weight_way.store(way, std::memory_order_relaxed); }

void force_keep_gemm(int keep) { forced_keep_gemms.store(keep, std::memory_order_relaxed); }

int forced_keep_gemm() { return forced_keep_gemms.load(std::memory_order_relaxed); }

void force(int strategy, int reader, int epilogue) {
  forced_reader.store(reader, std::memory_order_relaxed);
  forced_epilogue.store(epilogue, std::memory_order_relaxed);
  forced_strategy.store(strategy, std::memory_order_relaxed);
}

const char* name(Strategy strategy) { return strategy == Strategy::kFused ? "fused" : "split"; }

const char* name(Reader reader) {
  switch (reader) {
    case Reader::kPlanes: return "planes";
    case Reader::kCopyThenPlanes: return "copy_then_planes";
    case Reader::kPlaneLanes: return "plane_lanes";
    case Reader::kTorchSum: return "torch_sum";
    case Reader::kChannelRows: return "channel_rows";
    case Reader::kInEpilogue: return "in_epilogue";
  }
  return "?";
}

const char* name(Epilogue epilogue) {
  switch (epilogue) {
    case Epilogue::kTiledLse: return "tiled_lse";
    case Epilogue::kCublasLse: return "cublas_lse";
    case Epilogue::kRowsLse: return "rows_lse";
    case Epilogue::kNarrowLse: return "narrow_lse";
    case Epilogue::kGemvLse: return "gemv_lse";
  }
  return "?";
}

const char* name(Layout layout) {
  switch (layout) {
    case Layout::kPlanes: return "planes";
    case Layout::kChannelsLast: return "channels_last";
    case Layout::kStridedRows: return "strided_rows";
    case Layout::kOther: return "other";
  }
  return "?";
}

}  // namespace plan
}  // namespace fusedlse
