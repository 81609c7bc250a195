// Every tuning constant of the CUDA backend, each beside the measurement behind it (device and date where the
// comment gives them; docs/limits.md has the runs). The strategy planner's constants, which also decide between
// the fused launch and the split strategy, are in ../plan.cpp. Plain C++: included by host code and kernels alike.
#pragma once

#include <cstdint>
#include <initializer_list>

namespace fusedlse {

// --- Kernels --------------------------------------------------------------------------------------------------------

constexpr int kBlockThreads = 256;
constexpr int kWarpsPerBlock = kBlockThreads / 32;
// Shared memory a block takes without opting in (cudaFuncAttributeMaxDynamicSharedMemorySize), on sm_70 and later.
constexpr int64_t kDefaultSharedBytesPerBlock = 48 * 1024;
// The smaller of the targets' multiprocessors, sm_89's (RTX 4090): its shared memory and what the runtime reserves of
// it for each resident block. Kernels with a launch bound of several blocks check their static shared memory
// against it.
constexpr int64_t kSm89SharedBytesPerSm = 100 * 1024;
constexpr int64_t kReservedSharedBytesPerBlock = 1024;
// sm_90's (H200), for the kernels compiled for it with launch bounds of their own (gemm_lse.cu, kMmaLaunchBlocks).
constexpr int64_t kSm90SharedBytesPerSm = 228 * 1024;
// Minimum resident blocks per SM the fused kernel is compiled for: 2 caps registers at 128 per thread, where the
// float32/16-bit kernels do not spill (at 3 blocks, 80 registers, they did). The float64 kernels, a dtype for
// accuracy rather than speed, get 1 (up to 255 registers): at 128 their epilogue spilled.
template <typename T> constexpr int kMinBlocksPerSm = sizeof(T) == 8 ? 1 : 2;
// Whole-row tiles: at most this many rows per warp, read kRowsAtOnce at a time with their loads interleaved.
constexpr int kMaxRowsPerWarp = 16;
constexpr int kRowsAtOnce = 4;
// Values of wsum one weight-fold block computes: small pieces, so the fold is done long before the reads.
constexpr int64_t kFoldValues = 1024;
// Epilogue limits: a unit's sums live in shared memory, [channel][batch] with the batches padded to a multiple of
// four (at most kMaxUnitSums values), and its GEMM keeps one accumulator per batch of the unit per thread, up to
// kMaxUnitBatches (16 spilled at 128 registers).
constexpr int64_t kMaxUnitSums = 1024;
constexpr int kMaxUnitBatches = 8;
// Self-contained tiles: each thread keeps up to kSelfContainedLoads 16-byte loads in flight, and the tile's
// per-vector sums fit the block's reduce buffer (kReduceBytes).
constexpr int kSelfContainedLoads = 8;
constexpr int64_t kReduceBytes = 8192;  // >= 256 threads x 16 bytes' worth of float accumulators; >= 1024 doubles
// The epilogue GEMM copies W.sum to shared memory in chunks of up to kStageBytes, all in flight at once. The reads'
// kReduceBytes are the first bytes of the same buffer.
constexpr int64_t kStageBytes = 32 * 1024;
static_assert(kStageBytes >= kReduceBytes, "the reduce buffer lives in the stage");

// Loads each lane keeps in flight while streaming x: 16 warps per SM x 32 lanes x 8 x 16 bytes = 64 KiB per SM,
// above the ~32 KiB Hopper needs to saturate HBM, with room to spare while blocks start, sync or run an epilogue.
constexpr int kLoadsInFlight = 8;

// The readers load x evict-first (ld.global.cs) up to this many times the L2's size, cached (ld.global.nc) beyond
// (plan::evict_first_loads, load_once in kernels/load.cuh); docs/limits.md §23. H200 (60 MiB L2):
// - a flat float32 read after a 256 MiB memset, 8 warps each streaming an eighth of 32-128 KiB tiles
//   (bench/experiments/read_loads.cu), GB/s evict-first against cached: 32 MiB 2433 / 2144-2241, 128 MiB 3475-3528
//   / 3147-3244, 256 MiB 3772-3784 / 3747-3762, 512 MiB 3992-4014 / 4158-4178, 1 GiB 4161-4207 / 4390-4395;
// - the forward, every load of one kind, 50 problems: cached was slower at mid (256 MiB, +5%) and below, faster
//   from r39 (303 MiB of float64, -0% against +4% evict-first) up: the headline -4%, r33 (538 MiB) -17%.
constexpr double kEvictFirstMaxL2Share = 4.5;

// W.sum values each thread of the tap-folding GEMM folds before using any (16 spilled at 128 registers).
constexpr int kGemmLoads = 8;

// 16-byte stores each thread has in flight per loop trip (sizes the grid).
constexpr int kBroadcastVectorsPerThread = 4;

// Threads per block of the split strategy's kernels (split.cu).
constexpr int64_t kSplitThreads = 256;
// A CUDA grid's second dimension at most: the tiled epilogue's column runs, the narrow epilogue's channel ranges
// (plan.cpp), the rows the bfloat16 pieces' grid steps (split.cu).
constexpr int64_t kMaxGridY = 65535;
// The biases + logsumexp after cuBLAS's GEMM (split.cu) stage the biases' sum in shared memory, in the accumulation
// type, where it takes at most this much: C_out up to 4096 in float32, 2048 in float64 (at 8 blocks of kSplitThreads a
// multiprocessor, 128 KiB of the H200's 228; the RTX 4090's 100 KiB hold 6 of them, its 48 warps). Read from global
// memory per logit instead, with their 64-bit addresses and conversions, r14's logsumexp (65358 rows of 113) took
// 45.3 us against 25.6 (ncu), and its forward 181 us against 162, r62's 327 against 309 (H200, one run).
constexpr int64_t kBiasLseMaxStagedBytes = 16 * 1024;
// Lanes per row of its lanes kernel: as many as leave each about this many of the row's logits (at most 32). At one
// per lane, r14's logsumexp took 24.4 us, its lanes' merges and their exps as many instructions as its logits; at 8,
// 19.1 us, and the forward 160.4 -> 155.4. The 15 other shapes through cuBLAS's epilogue tried (C_out 1 to 3860) were
// within noise at 1, 4 and 8, each run twice (H200, an experiment build's FUSEDLSE_BIAS_LSE_VALUES).
constexpr int64_t kBiasLseValuesPerLane = 8;
// bias_lse's row kernel (split.cu bias_lse_row_kernel): a block of kBiasLseRowThreads threads per row, each loading
// kBiasLseRowLoads logits of it at once, for C_out up to their product (4096), a thread's biases in registers (float64
// at 1024 threads: at most 64 registers). H200, r23 (15 rows of 3860 float64 logits after cuBLAS, ncu): the block
// kernel (256 threads, trips of 4) 9.3 us; 256 threads of 16 loads 7.9 us (90 registers; each warp a chain of about
// 1250 instructions at 9.3 cycles each); 1024 threads of 4 loads 6.0 us (44 registers), r23's forward 45.7 -> 43.6 us
// (docs/limits.md §54).
constexpr int kBiasLseRowThreads = 1024;
constexpr int kBiasLseRowLoads = 4;
// Channels each thread of bias_lse's block per row (the shares and gemv kernels, split.cu) has in flight per trip:
// a row's few blocks wait on L2 once per trip.
constexpr int shares_lse_loads(int acc_bytes) { return acc_bytes == 8 ? 16 : 32; }
// cuBLAS's GEMM for 16-bit x on bfloat16 tensor cores over pieces of its float32 factors (plan::bf16_pieces_apply,
// ops_cuda.cpp's bf16_pieces_mm_out): three products over 3 x channels, the sums' and W.sum's pieces written by one
// launch each (split.cu), where rows and C_out are each at least kBf16PiecesMinSide and the channels too, or the
// channels at least kBf16PiecesMinChannels in a GEMM of kBf16PiecesMinFma multiply-adds or more. H100 (torch.mm of the
// pieces with out_dtype float32 against SGEMM, TF32 off, do_bench medians; docs/limits.md §103-104): [512, 2048] x
// [2048, 1024] (r06) 58.1 -> 20.2 us, [1024]^3 63.2 -> 16.3, [20000, 2000] x [2000, 2800] 4934 -> 976. Over C_out
// rounded up to 8 (§104) the pieces' GEMM took 0.22-0.61 of SGEMM's time at 4096 and 65536 rows, 120-4000 columns and
// 32-256 channels ([65536, 204] x [204, 1288] 923 -> 233 us), 0.73-0.88 of it at 4096 x 32 x 120-256 (a few us less,
// what the two pieces launches cost). The sums' pieces cost 12 bytes more per value than SGEMM's read (4 read, 6
// written, 6 read back): with C_out under about 130 they outweigh the GEMM's gain (r14's [65358, 220] x [220, 113],
// §103), so C_out stays at 256 or more. Rows under 256 were level or slower: r18's [70, 445] x [445, 2892] 19.3 ->
// 20.5, r60's [73, 276] x [276, 3295] 17.1 -> 19.6.
constexpr int64_t kBf16PiecesMinSide = 256;
constexpr int64_t kBf16PiecesMinChannels = 32;
constexpr int64_t kBf16PiecesMinFma = int64_t{1} << 27;
// Three products pay where the tensor cores run bfloat16 at this many times the FMA rate or more, by DeviceProps'
// counts (bf16_gflops against fp32_gflops): A100 8x, H100 and H200 16x, B200 32x; the GeForce parts of sm_86, sm_89
// (the RTX 4090) and sm_120 2x, where three products would cost 1.5x an SGEMM (not measured: no such device lent).
constexpr double kBf16PiecesMinTensorRate = 8;
// The pieces' layout (kernels.h, Bf16PiecesArgs): three slots of the shared dimension rounded up to 8 bfloat16
// elements, 16 bytes, and the right factor's rows likewise (cuBLAS's fast kernels want such strides).
constexpr int64_t kBf16PieceSlots = 3;
constexpr int64_t kBf16PiecesAlign = 8;
// n (the shared dimension, or C_out) rounded up to kBf16PiecesAlign: the pieces' and their GEMM's sizes.
constexpr int64_t bf16_pieces_rounded(int64_t n) {
  return (n + kBf16PiecesAlign - 1) / kBf16PiecesAlign * kBf16PiecesAlign;
}
// The gemv epilogue's wide block: this many threads per row where they take fewer trips than kSplitThreads
// (plan::gemv_lse_tiling), each with shares_lse_loads in flight (106-108 registers, as at 256 threads; 1024 threads,
// at 64 registers, spilled with half the loads a trip, and took as many trips as 512 with all of them on mid and r20).
constexpr int kGemvWideThreads = 512;
// The channel-rows reader folds W.sum((2,3)) before its items of x (WeightFold) for contiguous weights up to this
// size, saving the split strategy a launch. H200, the sweep's problems, main against the fold (two interleaved runs
// each, same machine): r36 44.6 -> 40.4 us, r55 182 -> 176 (a 12.8 MB float64 weight), r21 and r38 1-2% faster, r04
// and r05 within 1%. Larger weights keep their own launch of the plane-lanes reader, whose lanes keep more loads in
// flight. The plane-lanes reader does not fold: with the fold compiled into it, the forwards that read 16-bit planes
// of a few elements with one lane each ran 6-11% slower (r01, r13, r14, r46, r50, r53, r58; ptxas gave those
// kernels 40 registers instead of 43-51), more than the launch saved elsewhere (2-5%: r06, r18, r32, r41, r57).
constexpr int64_t kReaderFoldMaxWeightBytes = int64_t{16} << 20;

// The plane-lanes reader (split.cu; sized by plan::plane_lanes_tiling): the most lanes (1, 4, 8 or 32) that still
// leave each at least kPlaneLanesUnitsPerLane of a plane's loads (about one trip of loads in flight: with 4, planes
// of 172 elements went to 32 lanes of 6 loads each and the per-plane work, not memory, bound r42 of the sweep), or
// kPlaneLanesNeighbourUnitsPerLane where a group's lanes load neighbouring bytes (the masked-vector walk, the scalar
// walks of rows of stride 1): more lanes then make each of a warp's loads fewer, longer runs of bytes. H200, forward
// of the sweep's rows (194ed2b, the masked walk for every size; us, 8 -> 4 -> 2 units a lane): r42 (4x43 float16,
// masked: 1 -> 4 -> 8 lanes) 250.9 -> 200.4 -> 244.1, r08 (4x18 float32, masked) 17.9 -> 16.3 -> 15.8, r27 (one row
// of 24 float64, scalar) 1071 -> 958 -> 911; r39 (channels-last float64, elements 68 apart) 102.6 -> 119.7 at 4,
// which keeps 8 (docs/limits.md §42);
// planes cut into pieces of at least kPlaneLanesPieceLoads loads per lane (at 128, r02's 64 planes of 64K elements
// made 128 items and ran 2x slower; elsewhere 128 and 32 were within 4%), until every resident group has
// kPlaneLanesItemsPerGroup items (the last wave of equal items is then a small part).
constexpr int64_t kPlaneLanesUnitsPerLane = 8;
constexpr int64_t kPlaneLanesNeighbourUnitsPerLane = 4;
// The lane counts past one, smallest first (split.cu has a kernel for each).
constexpr int kPlaneLanesGroups[] = {4, 8, 32};
constexpr int64_t kPlaneLanesPieceLoads = 32;
// Contiguous planes that start inside a 16-byte vector take the inner-vector walk (its whole vectors 16 bytes a load,
// the elements around them one by one: read_plane_lanes.cuh, Walk::kInnerVectors) from this many elements; shorter
// ones the scalar walk. Forward of about 256 MiB of planes 1 element past alignment, H200, 9884c92 against the
// scalar walk (us): float32 planes of 975 elements 91.9 / 81.7, 2047 81.6 / 82.0, 8191 78.5 / 79.8, 32767 79.5 /
// 82.2, 131071 80.5 / 82.1; float16 975 105.6 / 94.7, 2047 97.6 / 103.4, 8191 79.8 / 93.5, 32767 79.5 / 94.4,
// 131071 79.8 / 95.0; r34 (float16 planes of 296738) 168.0 / 205.1. Aligned planes keep the plain vector walk: with
// the inner walk's per-plane steps, r33 (bfloat16 planes of 1008) took 178.0 us against 173.4.
constexpr int64_t kInnerVectorsMinElements = 2048;
constexpr int64_t kPlaneLanesItemsPerGroup = 4;
// Planes that are kBlockPerPlaneMinWave to 1 of the resident blocks take a block each, its groups the plane's pieces
// (plan::plane_lanes_tiling), rather than kPlaneLanesItemsPerGroup pieces a group and a second launch adding them.
// H200 (a build with the share as a knob, best of 3, us; the reader's rule before / from 0.9 / from 0.5 of a wave):
// bfloat16 planes of 512 x 512, 528 planes 79.7 / 79.7 / 80.2, 800 115.3 / 115.3 / 114.5, 952 132.5 / 130.0 / 131.2,
// 1056 142.7 / 141.8 / 141.8; float32 256 x 256, 528 45.0 / 45.0 / 43.5, 800 64.4 / 64.4 / 62.4, 1024 77.6 / 75.6 /
// 75.7; float32 509 x 509 (the masked walk), 528 144.8 / 144.8 / 141.5, 800 212.1 / 212.2 / 206.8, 1024 level (257.9);
// float16 300 x 300, 528 37.4 / 37.4 / 34.5, 952 57.3 / 55.3 / 54.4; headline_bf16 140.1 / 138.2 / 139.3. Planes past
// one wave (1064: a second wave of a few blocks, each a whole plane) keep the pieces (r34, 1085 planes, was 167.8 ->
// 177.1 us with a block per plane).
constexpr double kBlockPerPlaneMinWave = 0.5;
// The masked-vector walk (read_plane_lanes.cuh, Walk::kMaskedVectors): planes of strided rows of at least
// kMaskedVectorsMinElements elements whose gaps between rows are shorter than kMaskedVectorsMaxGapBytes (a DRAM
// sector: the gaps' bytes are fetched anyway). Measured on the H200 (forward of the sweep's problems, scalar walk ->
// masked walk, us): r26 (3x6 float16) 373 -> 222, r42 (4x43 float16) 286 -> 242, r24 (3x5 float32) 78.5 -> 72.7,
// r09 (8x3 bfloat16) 299 -> 290, r56 (62x4 float32) 48.2 -> 47.2, r08 and r11 within 1%; but r58 (2x3 float16)
// 151 -> 194 and r59 (3x1 float64) 415 -> 422: a plane of a handful of elements costs more in the walk's per-plane
// setup (a division, the first vector's offset) than its scalar loads do. Larger planes, whose scalar walk has 32
// lanes of 2- to 8-byte loads (194ed2b): r57 (365x39 bfloat16) 159.2 -> 115.0, r41 (14x203 bfloat16) 28.7 -> 21.2,
// r10 (31x44 float16) 33.5 -> 29.8, r40 (1178x89 float32) 223.6 -> 214.1 (docs/limits.md §42). But a plane of one
// strided row (a column of elements a few apart, as rows of one) keeps the scalar walk past
// kMaskedColumnMaxElements, where it has 32 lanes: r25 (333x1 bfloat16, elements 3 apart) 641.6 -> 832.0 masked.
constexpr int64_t kMaskedVectorsMinElements = 12;
constexpr int64_t kMaskedColumnMaxElements = kPlaneLanesUnitsPerLane * 32;
constexpr int64_t kMaskedVectorsMaxGapBytes = 32;

// The run walk (read_plane_runs.cuh, PlaneRunsArgs; sized by plan::plane_runs_tiling): contiguous planes of at most
// kPlaneRunsMaxElements elements that follow each other in runs of at least kPlaneRunsMinRunBytes (a batch's
// channels, or every plane of x), a thread per item of about kPlaneRunsItemVectors 16-byte vectors and at most
// kPlaneRunsMaxItemSumBytes of sums (a block stages 256 items' sums in shared memory: 33 KiB at most), fewer where
// that would leave a resident thread fewer than kPlaneRunsItemsPerThread items. H200, forward of the sweep's
// problems, the reader's kernel alone (cold, us) for the scalar walk it replaces -> items of 1, 2, 4 vectors:
// r14 (220 planes of 2 float16 per batch, 4 bytes past alignment) 95.5 -> 79.0, 59.3, 52.7; r50 (4 float16) 72.5 ->
// 92.6, 67.2, 55.9; r62 47.2 -> 54.2, 43.6, 38.3; r45 (32 bfloat16) 160.7 -> 93.5, 93.7, 90.3; r13 (30 bfloat16)
// 15.9 -> 15.8, 15.9, 14.1; planes of one element, against torch's copy: r22 (float16) 99.0 -> 95.0, 82.3, 74.4,
// r00 (float32) 17.8 -> 23.3, 23.4, 20.5 (its forward 116.6 -> 113.5 all the same); but r01 (6 bfloat16) 20.2 ->
// 42.7, 26.1, 23.9. Stored by each thread instead of staged, a warp's stores hit a sector per lane, and the same
// items took 1.5-9x as long (r14 146-444 us). Not for float64 (kPlaneRunsMaxElementBytes): the scalar walk loads 8
// bytes per element there, and the run walk read r11's 574 MB weight (W.sum: planes of 5 float64, one run) slower,
// its forward 252 -> 317 us (sweep of e78d087).
constexpr int64_t kPlaneRunsMaxElements = 32;
constexpr int64_t kPlaneRunsMaxElementBytes = 4;
constexpr int64_t kPlaneRunsMinRunBytes = 64;
constexpr int64_t kPlaneRunsItemVectors = 4;
constexpr int64_t kPlaneRunsMaxItemSumBytes = 128;
constexpr int64_t kPlaneRunsItemsPerThread = 2;

// Plane sizes (bit p: planes of p elements) where the run walk, adding each element to its plane's sum, read faster
// than the plane-lanes reader's lane per plane (plan::tiny_plane_walk; planes of 1, 2, 4 or 8 elements that tile the
// 16-byte vectors are summed whole per vector instead: 1.05-2.7x the lanes in 2M and 14M planes, 0.84-1.09x (within
// 1.1 us of 5-7) in 150K planes, where items of four vectors leave few threads).
// H200, sum_hw forced each way (bench/experiments/run_walks.py), planes of 1 to 32 elements in 2M and 14M planes,
// contiguous and a slice of C: listed where the geometric mean of lanes / runs over the four exceeded 1.02. The walks
// trade places with the plane size: the run walk's items of about four vectors fit some planes well (float16 planes
// of 12, 16, 20, 24, 28 or 32 elements: 1.05-1.47x; float32 planes of 16 to 31: 1.05-1.71x) and others badly (float16
// planes of 7, 11, 22, 23: 0.78-0.84x; float32 planes of 5 and 11: 0.84x, 0.77x); the lanes were slow on planes of
// 16 and 32 float16 and 16 and 24 float32. Planes of 1, 2, 4 (and 8 float16) elements are listed for when they do
// not tile the vectors (x or its runs not aligned to a plane's bytes). bfloat16 takes float16's list (not measured
// apart: the same loads).
constexpr uint64_t plane_sizes(std::initializer_list<int> sizes) {
  uint64_t bits = 0;
  for (const int size : sizes) bits |= uint64_t{1} << size;
  return bits;
}
constexpr uint64_t kRunWalkFaster16BitPlanes = plane_sizes({1, 2, 4, 8, 12, 16, 18, 20, 21, 24, 28, 32});
constexpr uint64_t kRunWalkFaster32BitPlanes = plane_sizes({1, 2, 4, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27,
                                                            28, 29, 30, 31});

// The staged walk (split.cu plane_tiles_kernel, PlaneRunsArgs::staged): a block copies tiles of a run's planes, up
// to kStagedTileBytes (a multiple of kSplitThreads planes), into shared memory, each warp's 16-byte copies 512
// contiguous bytes, the next tile's copies in flight while the threads add this one's planes, a plane at a time. The
// lanes and the run walk have each thread load its own planes, a warp's load spanning a sector per lane or more:
// r60's W.sum (planes of 15 float32, 55 MB) ran at 2.9 TB/s under Nsight Compute, its x (planes of 1476) at 3.8.
// For planes of at most kStagedMaxPlaneBytes (two tiles then take 32 KiB of shared memory, under the 48 KiB a launch
// gets without asking) in runs of at least kStagedMinRunPlanes planes (a tile's worth: shorter runs leave tiles
// part empty), of the sizes listed per element width where it was measured faster than the walk the table gave
// before. H200, bench/experiments/run_walks.py (sum_hw of one run of 2M and 14M planes, each walk forced; the
// geometric mean of the fastest other walk's time over the staged walk's, listed above 1.02), a first kernel whose
// threads each started their plane at their own element (odd planes too) and whose grid walked empty tiles past a
// run's end where a tile holds more than kSplitThreads planes: float16 planes of 17, 19, 21-30 and 32 (a tile of
// kSplitThreads planes: not affected) 1.08-1.42x the run walk (25: 14M planes 308.9 -> 210.7 us, 3.3 TB/s; 22:
// 287.8 -> 196.6), 0.42-1.02x on the others (31: 361.2 -> 763.7, a warp's lanes on two banks); float32 0.48-1.00x;
// float64 (lanes only before) 0.79-0.98x. This kernel (odd planes unrotated, the tile count fixed), rerun (docs/
// limits.md §53), is what the lists below hold: float16 faster on 26 of 32 sizes, 1.03-1.42x (3: 63.3 -> 44.6 us at
// 14M planes; 15: 174.1 -> 136.3; 31: 360.0 -> 247.7; slower on 1, 2, 4 and 8, whose whole-vector walk stays, and
// on 18 and 20), float32 on planes of 3 (1.14x) and 15 (1.02x), float64 on planes of 1 (1.17x) and 2 (1.03x); bfloat16
// takes float16's list (the same copies and adds). In a forward, the staged W.sum of r60 (15 float32) beside x's
// reader took it from 81.3-84.0 to 78.2-78.4 us (its grid, 7 blocks a multiprocessor by shared memory, leaves block
// slots for the reader).
constexpr int64_t kStagedMaxPlaneBytes = 64;
constexpr int64_t kStagedTileBytes = 16 * 1024;
constexpr int64_t kStagedMinRunPlanes = 4096;
// The planner takes the staged walk for runs of at least kStagedChosenMinRunBytes (forced, it reads runs from
// kStagedMinRunPlanes planes): on shorter runs each block gets few tiles and its copy-then-add latency shows. H200,
// sum_hw of one run of float16 planes of 25, lanes / runs / staged, us: 16K planes (0.8 MB) 4.8 / 6.3 / 5.7, 62K
// (3.1 MB) 7.6 / 8.0 / 7.5, 250K (12.5 MB) 13.1 / 12.3 / 10.8, 1M 38.3 / 27.9 / 25.4, 4M 138.1 / 94.3 / 70.9 (r30's
// W.sum, 62K such planes: its forward 27.1 us staged against 26.4 and 26.5). Counted in bytes, not planes, because a
// tile holds 16 KiB whatever its planes' size: 4 MiB is 256 tiles, two a multiprocessor on the H200.
constexpr int64_t kStagedChosenMinRunBytes = int64_t{4} << 20;
constexpr uint64_t kStagedWalkFaster16BitPlanes = plane_sizes({3, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 19, 21,
                                                               22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32});
constexpr uint64_t kStagedWalkFaster32BitPlanes = plane_sizes({3, 15});
constexpr uint64_t kStagedWalkFaster64BitPlanes = plane_sizes({1, 2});

// The rows epilogue (gemm_lse.cu, Epilogue::kRowsLse; sized by plan::rows_lse_tiling): blocks of kRowsLseThreads
// threads, a row per group of 1 to 32 lanes, each lane computing whole chunks of kRowsLseChunk columns (two 16-byte
// shared-memory loads of W.sum per channel for float). The block stages W.sum and the biases' sum (columns padded
// to whole chunks) and its rows' sums in shared memory: at most kRowsLseMaxChannels channels, and all of it within
// kRowsLseMaxSharedBytes, the 48 KiB a block gets without opting in, counted at one lane per row (the most rows per
// block): float C_out up to 6072 at C_in 1, 4008 at 2, 600 at 16; double up to 3000, 1960 and 240. Why a chunk and
// no tile: the tiled kernel's 128-row tiles spent about 60 issue slots per logit on r00 (C_in 4, C_out 64; ncu: 122M
// warp instructions for 64M logits, 196 us), its thread blocks and staging sized for GEMMs with many channels; the
// rows kernel took r00's forward from 212 to 119 us (H200, plan.cpp has the rest). A first rows kernel with up to 8
// columns per lane, always unrolled to 8 and predicated, issued 188 slots per logit (ncu: 376M warp instructions,
// 436 us).
constexpr int kRowsLseThreads = 128;
constexpr int kRowsLseChunk = 8;
constexpr int64_t kRowsLseMaxChannels = 16;
constexpr int64_t kRowsLseMaxSharedBytes = kDefaultSharedBytesPerBlock;
// Lanes per row double while the rows' lanes fill less than this share of the device's resident threads (16 of 64
// warps per SM on the H200 keep the FMAs busy): every lane of a group loads its own chunk of W.sum from shared
// memory, so more lanes per row take more shared-memory wavefronts per FMA. H200, the forward with the rows epilogue
// forced and lanes capped at 1 to 32 (6e0af90's kernels): r13 (18415 rows, C_in 8, C_out 196) 24.9 us at 4 lanes,
// 30.8 at the 16 that filling every resident thread gave; r10, r56 (C_in 2 and 3, C_out about 1540 on 4844 and 5863
// rows) best at 16-32 lanes, 2.7x slower at 2; r19, r63 (41 and 7 rows) best at 32; the others had one or two chunks.
constexpr double kRowsLseFillShare = 0.25;

// The narrow epilogue (gemm_lse.cu, Epilogue::kNarrowLse; sized by plan::narrow_lse_tiling): C_out of at most
// kNarrowLseMaxColumns, padded to 4, 8, 16 or 32 columns (kCols), and any C_in: a block stages the transposed W.sum
// ([kCols][C_in]) and the biases within kNarrowLseMaxSharedBytes (within the 99 KiB a block may opt into on
// sm_86/sm_89, 227 KiB on sm_90): float C_in up to 6143 at 4 columns, 767 at 32, double half those; past that the
// fewest equal channel ranges that fit (split-K), each range's partial logits added by bias_lse. A group of 8 or 32
// lanes takes narrow_lse_rows(kCols) rows at a time, so that each lane holds 32 logits at most and every W.sum word it
// loads from shared memory serves several rows where columns are few. Blocks of kNarrowLseThreads threads.
constexpr int kNarrowLseThreads = 256;
constexpr int64_t kNarrowLseMaxColumns = 32;
constexpr int64_t kNarrowLseMaxSharedBytes = 96 * 1024;
// Loads of the rows' sums each lane has in flight (narrow_lse_rows(kCols) rows x kNarrowLseLoads / rows channels).
// H200, the forward with the narrow epilogue forced (sm_90 builds in one run): 16 against 8, r47 (one row of 1473
// float64 channels) 69.1 -> 59.7 us, r24 61.1 -> 57.9, r28 27.8 -> 25.7, r22 123.3 -> 119.0, s6 (8 rows of 3000) 34.8
// -> 30.0, the rest within 2%; a loop unrolled by 2 (2 x rows loads) had taken r50 (9319 rows of 1244 float16
// channels, C_out 10) to 101.6 us, 83.5 at 16. 16 costs registers: float64 at 32 columns takes 208 (one block per
// multiprocessor), float at 32 columns 128.
constexpr int kNarrowLseLoads = 16;
constexpr int narrow_lse_rows(int columns) { return columns >= 32 ? 1 : columns >= 16 ? 2 : 4; }
// The group's logits are reduce-scattered across its lanes (v, a copy of them, in registers). Left to ptxas, the
// float64 kernel of 4 columns took 96 registers with it (80 before): 2 blocks of 256 a multiprocessor instead of 3,
// and r59 (9346 rows of 1570 float64 channels) read its sums 1.7% slower (H200, sm_90 builds side by side: 407.0 ->
// 414.1 us). Held to 3 blocks (80 registers, no spills) are the kernels whose row of logits takes 32 bytes or fewer
// (float64 at 4 columns, float at 4 and 8); the wider ones keep ptxas' choice: a minimum of one block let it take
// up to 255 registers (float at 32 columns 128 -> 168).
constexpr int kNarrowLseSmallRowBlocks = 3;
constexpr int64_t kNarrowLseSmallRowBytes = 32;
// A group has 8 lanes, or 32 where groups of 8 would fill less than kNarrowLseFillShare of the device's resident
// threads and C_in gives each of 32 lanes two channels or more: the loads in flight hide DRAM's latency only with
// enough threads (32 lanes where few rows have many channels: r50, r47, r24 of the sweep; not varied apart).
constexpr double kNarrowLseFillShare = 0.5;
constexpr int64_t kNarrowLseWideGroupChannels = 64;

// The channel-rows reader (split.cu; sized by plan::channel_rows_tiling): channels-last x of up to
// kSplitThreads * kChannelRowsWideLoads channels (C_in 2048: the sweep's widest). Chunks of pixels leave each thread
// at least kChannelRowsMinLoads loads (four trips), until every resident block has kChannelRowsItemsPerBlock items.
// The plane-lanes reader's figures, taken over; the reader was measured (plan.cpp), these sizes were not varied.
constexpr int kChannelRowsWideLoads = 8;
constexpr int64_t kChannelRowsMinLoads = 32;
constexpr int64_t kChannelRowsItemsPerBlock = 4;
// Its vector walk (split.cu's channel_vectors_kernel; plan::channel_vectors_period and channel_vectors_apply), for x
// whose pixels follow each other: a block keeps a period's accumulators in at most kChannelVectorsMaxSharedBytes of
// shared memory (what a block gets without opting in, less room for the kernel's static arrays), in copies up to one
// slot per thread. A slot takes at least kChannelVectorsMinLoads vectors of an item (one trip; the scalar walk's 32
// loads of 2 or 4 bytes move no more). H200, forced channel-rows reader, vector walk against the scalar walk (same run,
// a first version: up to four slots per thread, 32 loads a slot): r37 (1439 bfloat16 channels) 255.5 -> 166.7 us (the
// fused launch 218), r52 (142 float32) 151.6 -> 134.4, r36 (39) 41.2 -> 39.4, headline_nhwc and r04 (64) 265 -> 262.5
// and 268 -> 265.6, r38 (73 float16) level; slower: r55 (33 float64) 171 -> 260, r21 (9 bfloat16) 62.9 -> 76.4, r05 (5)
// 25.7 -> 36.9 (too few items for the device), r54 (18 channels, 69 pixels a batch: an item per batch, whose sums cost
// more than its loads) 690 -> 10950. In the sweep of 60d6e68 (this version, from 32 channels): r37 0.633 -> 0.776 of
// the floor (the tuned Triton rival 0.664: no rival faster on any shape), headline_nhwc and r04 +0.8%, but r36 0.865 ->
// 0.768 and r38 0.872 -> 0.810: 8-13 loads a slot per item, where a channel's sum of slots x vector / C accumulators,
// one thread per channel, outweighs them. Hence the walk only past kChannelVectorsMinChannels - 1 channels, where the
// planner took no channel-rows reader before (the scalar walk keeps every channel count it was measured on), 16- and
// 32-bit elements only (float64's scalar loads already move 8 bytes; by the vector walk it read 1.1-2.6x slower,
// docs/limits.md section 71), and batches of at least a slot's loads for every slot. Items of 32 loads a slot rather
// than 8 (same H200 run, two sm_90 builds, µs, planner's plan / forced channel-rows): r37 177.2 -> 166.7 (-6%); r52,
// r36, r20 and a (4, 256, 300, 300) float32 x within 0.5%. The walk from 32 channels with 32 loads a slot, against the
// scalar walk in the same two builds: headline_nhwc 264.9 -> 262.9 and r04 267.7 -> 265.5 (-0.8%), r36 level (40.5 /
// 40.7), r38 (73 float16) 28.2 -> 30.4 (+8%): not taken.
constexpr int64_t kChannelVectorsMaxSharedBytes = 46 * 1024;
constexpr int64_t kChannelVectorsMinLoads = 32;
constexpr int64_t kChannelVectorsMinChannels = 129;
// The planner takes the walk for x of chunks enough for kChannelVectorsMinBlocks blocks (plan::channel_vectors_blocks,
// B x the chunks of kChannelVectorsMinLoads loads a slot that a batch's pixels make). A period of many vectors (C 1439
// or 1999 float32, not a multiple of 4: one slot per vector) takes chunks of 128 pixels, and 1 to 8 batches of 529 to
// 5776 pixels made 32 to 45 blocks, 1.17-1.79x the time of torch's reduction or the fused launch on all 8 such problems
// (H200, the few_planes_channels_last grid, docs/limits.md section 76). From 96 blocks on, the walk took 0.57-1.24x the
// time of the best other reader on the 81 channels-last problems of the grids and the sweep it runs on, at most 1.06x
// on 76 of them (r37's 696 blocks: 0.75x).
constexpr int64_t kChannelVectorsMinBlocks = 64;

// The tiled GEMM + logsumexp (gemm_lse.cu): tiles of rows x cols outputs, each of kGemmThreads threads computing
// thread_rows x thread_cols of them, `depth` channels per step for float accumulators (half as many for double, so
// that the static shared memory stays under 48 KiB). cols / thread_cols lanes share a row (at most 32, a power of
// two: their logsumexp states merge by shuffles). plan::gemm_tiling() picks one by C_out (narrow tiles waste no
// lanes on columns past C_out), the accumulation type and how many tiles there are to spread over the
// multiprocessors. Each step waits for its loads (one step is prefetched), so thin tiles take deeper steps: on the
// H200, 8 channels per step left tiles of 8 or 16 FMAs per thread per channel waiting on memory (1.2-1.7 us per
// step; r43, r50, r59 of the sweep).
// float64 from 33 columns on takes the tensor-core tile (kMmaTile: mma_lse_kernel, 32 rows by 64 columns, m16n8k8 FMAs
// on sm_90 and m8n8k4 on sm_89, exact like the SIMT ones), three blocks a multiprocessor (kMmaBlocksPerSm). H200
// (docs/limits.md section 44), forward with the SIMT tile the rule gave before against the tensor-core one, best of 3:
// r51 (46 rows, 39 channels, C_out 4956) 23.0 -> 20.6 and 24.0 -> 22.3 us in two runs, r27 (180286 rows, 25 channels,
// 413) 946 -> 852 and 947 -> 889, r55 168 -> 165, r31 119 (level); the gemm_lse op alone on r43's GEMM (2328 x 657 x
// 61) 46.5 -> 38.8-42.1, r23's (15 x 686 x 3860) 49.9 -> 42.9-48.3. Their time is now the steps' latency, not FMAs
// (ncu, r51: 2 warps a scheduler issuing 0.32 a cycle, stalled on fixed-latency dependencies). float stays SIMT: the
// same kernel on TF32 split three ways took r60's [73, 276] x [276, 3295] from 25 to 24 us, r58's forward 160 -> 141,
// r09's 260 -> 372 (128-row tiles re-read W.sum 4x less), and TF32 is what float32 results do without.
// A second tensor-core tile 128 columns wide (2 blocks a multiprocessor at 101-123 registers) took C_out that it
// padded no more than the 64-wide one; against it the 64-wide tile at three blocks was faster on both sweep rows it
// had (H200, forwards, best of 3: r51's 4956 columns 21.7 -> 20.7 us, r31's 219 columns 120.9 -> 119.1; section 66)
// and was removed.
struct GemmTileShape {
  int rows, cols, thread_rows, thread_cols, depth;
  bool mma = false;  // the tensor-core kernel (gemm_lse.cu, mma_lse_kernel): its warps, not thread_rows x thread_cols
};
constexpr int kGemmThreads = 256;
constexpr GemmTileShape kGemmTiles[] = {
    {256, 8, 8, 1, 16},    // 0: C_out <= 8
    {128, 32, 8, 2, 16},   // 1: C_out <= 32
    {128, 64, 8, 4, 16},   // 2: C_out <= 64, float accumulation
    {128, 128, 8, 8, 8},   // 3: wider, float accumulation
    {32, 64, 4, 2, 32},    // 4: float, where tiles 2 or 3 would leave multiprocessors without a block
    {32, 64, 0, 0, 32, true},   // 5: float64 on tensor cores, from 33 columns
    {128, 64, 0, 0, 16, true},  // 6: 16-bit x on bfloat16 tensor cores over pieces, from 33 columns
};
constexpr int kGemmTileCount = sizeof(kGemmTiles) / sizeof(kGemmTiles[0]);
constexpr int kThinTile = 4, kMmaTile = 5, kBf16MmaTile = 6;
constexpr int gemm_depth(int tile, int acc_bytes) { return kGemmTiles[tile].depth * 4 / acc_bytes; }
// The tensor-core tile summing x's float64 planes itself (plan::tile_sums_planes): all of a row tile's channels in its
// two buffers of staged sums, and rows of at most two elements a lane of a half warp (gemm_lse.cu, sum_tile_planes).
constexpr int kTilePlanesMaxChannels = 2 * gemm_depth(kMmaTile, 8);
constexpr int kTilePlanesMaxWidth = 32;
// The narrow epilogue summing x's strided planes itself (plan::narrow_reads_planes): planes of at most
// kNarrowPlanesMaxElements elements, whose offsets the host lists (GemmLseArgs::plane_offsets), and each lane's loads
// of kNarrowPlaneElementsAtOnce elements of each of its planes issued together. In element rounds (every plane's
// element e, then e + 1, its adds between), a sector's second touch came a round later and went back to DRAM: r59's
// forward 815.9 us against 582.3 by the plane-lanes reader, 2.06 GB moved for 1.41 GB (H100, docs/limits.md §95).
constexpr int kNarrowPlanesMaxElements = 8;
constexpr int kNarrowPlaneElementsAtOnce = 4;
// Blocks per multiprocessor the column runs aim for (two of 256 threads fit at up to 128 registers each); the float64
// SIMT tiles are compiled for one (at 128 registers their tiles of 8 rows spilled).
constexpr int64_t kGemmBlocksPerSm = 2;
// On sm_89 the tensor-core tile is compiled for three (68-80 registers since section 67's fetch ahead, 62-72 before, no
// spills, on sm_89 and sm_90; 78-88 at two, which left r43's split GEMM of 511 blocks in 1.3 waves of the three that
// fit, and r27's 5634 blocks issuing from 4 warps a scheduler): its 29 KiB of static shared memory three times fits an
// sm_89 multiprocessor's 100 KiB. H200, against two a multiprocessor (section 66): r27's forward 861.6 -> 804.5 us (its
// epilogue alone 548.6 -> 501.4), r43's GEMM in 5 channel ranges instead of 7, r23's in 6 instead of 4 (the gemm_lse op
// alone within 1 us either way).
constexpr int64_t kMmaBlocksPerSm = 3;
// Four where a multiprocessor's shared memory holds them (sm_90's 228 KiB): compiled for sm_90 at that bound the tile
// takes 58-64 registers without spills (nvcc 13.0), 8 warps a scheduler where three blocks leave 6 (its float64 pipe
// about half busy at 6, section 67). H200, against three (section 70, two interleaved rounds of `bench/sweep.py
// --only`): r27 0.531 -> 0.565 of its floor (598 -> 565 us), r23 0.572-0.587 -> 0.586-0.602, r31, r51, r55 and r43
// level. The kernel's launch bound and the planner both ask gemm_blocks_per_sm: the former with its architecture's
// shared memory, the latter with the device's; kMmaSharedBytes is the kernel's static shared memory (asserted there).
constexpr int64_t kMmaBlocksPerSmWide = 4;
constexpr int64_t kMmaSharedBytes = 29696;
constexpr int64_t mma_blocks_per_sm(int64_t shared_bytes_per_sm) {
  return kMmaBlocksPerSmWide * (kMmaSharedBytes + kReservedSharedBytesPerBlock) <= shared_bytes_per_sm
             ? kMmaBlocksPerSmWide
             : kMmaBlocksPerSm;
}
// The bfloat16 tensor-core tile (kBf16MmaTile: bf16_mma_lse_kernel) for float16 and bfloat16 x where their GEMM's
// pieces pay (plan::bf16_tile_applies): 128 rows by 64 columns as 4 x 2 warps of 32 x 32, three m16n8k16 products over
// bfloat16 pieces of each 16 channels, the logsumexp in registers as the float64 tile's. 128 rows: the same 32-row
// tile on TF32 split three ways had taken r09's forward from 260 to 372 us, staging W.sum for 4x fewer rows (above).
// Its block keeps all its rows' pieces in shared memory for its whole column run, bf16_mma_staged_bytes of them, and
// reads W.sum's pieces, cut once per call into fragment order, from global memory (bf16_mma_weight_bytes of workspace,
// the columns' biases after them): no barrier between steps (docs/limits.md section 107). Two blocks a
// multiprocessor (up to 128 registers); the planner takes it where two blocks' shared memory fits the device's.
constexpr int64_t kBf16MmaBlocksPerSm = 2;
constexpr int64_t kBf16MmaRows = 128, kBf16MmaCols = 64, kBf16MmaDepth = 16;
constexpr int64_t kBf16MmaStaticBytes = 2 * kBf16MmaRows * 8;  // the column warps' logsumexp states
constexpr int64_t bf16_mma_columns(int64_t c_out) { return (c_out + kBf16MmaCols - 1) / kBf16MmaCols * kBf16MmaCols; }
// The tile's depth steps over `channels`: kBf16MmaDepth channels each, the last one partial.
constexpr int64_t bf16_mma_steps(int64_t channels) { return (channels + kBf16MmaDepth - 1) / kBf16MmaDepth; }
// A step's first and low pieces of 128 rows: 2 x 128 x 16 bfloat16 values.
constexpr int64_t bf16_mma_staged_bytes(int64_t channels) {
  return bf16_mma_steps(channels) * 2 * kBf16MmaRows * kBf16MmaDepth * 2;
}
// W.sum's first and low pieces for whole column tiles (GemmLseArgs::weight_fragments): a 16-byte word for each lane of
// 32, step of kBf16MmaDepth channels and n8 tile, which bf16_weight_fragments writes a thread each;
// bf16_mma_weight_bytes: those, then the columns' float32 biases (16-byte aligned).
constexpr int64_t bf16_mma_fragment_lanes(int64_t channels, int64_t c_out) {
  return bf16_mma_columns(c_out) / 8 * bf16_mma_steps(channels) * 32;
}
constexpr int64_t bf16_mma_fragment_bytes(int64_t channels, int64_t c_out) {
  return bf16_mma_fragment_lanes(channels, c_out) * 16;
}
constexpr int64_t bf16_mma_weight_bytes(int64_t channels, int64_t c_out) {
  return bf16_mma_fragment_bytes(channels, c_out) + bf16_mma_columns(c_out) * 4;
}
constexpr bool bf16_mma_fits(int64_t channels, int64_t shared_bytes_per_sm) {
  return kBf16MmaBlocksPerSm *
             (bf16_mma_staged_bytes(channels) + kBf16MmaStaticBytes + kReservedSharedBytesPerBlock) <=
         shared_bytes_per_sm;
}
// Blocks of tile `tile` a multiprocessor of shared_bytes_per_sm holds: the kernels' launch bounds (the smaller of the
// targets' multiprocessors by default, sm_90's for the tensor-core tile compiled for it) and the planner's (the
// device's), from one rule.
constexpr int gemm_blocks_per_sm(int tile, int acc_bytes, int64_t shared_bytes_per_sm = kSm89SharedBytesPerSm) {
  if (tile == kBf16MmaTile) return static_cast<int>(kBf16MmaBlocksPerSm);
  if (kGemmTiles[tile].mma) return static_cast<int>(mma_blocks_per_sm(shared_bytes_per_sm));
  return acc_bytes == 8 ? 1 : static_cast<int>(kGemmBlocksPerSm);
}
// Split-K: where a GEMM's tiles leave resident block slots empty and each tile is a long chain of depth steps (thin
// GEMMs over many channels: B or C_out of a few tiles, C_in in the hundreds), its channels are cut into up to
// kGemmMaxSplits ranges of at least kGemmMinSplitSteps steps, one block per tile and range; each block writes its raw
// logits ([splits, B, C_out], at most kGemmMaxSplitValues values) and bias_lse adds the ranges in order, then the
// biases and the logsumexp (plan::gemm_tiling). H200, the gemm_lse op alone, unsplit -> best forced split (us; a step
// took 1.2-1.8 us of a block's time whatever the tile): [15, 1125] x [1125, 135] float 53.7 -> 14.8 (8 ranges),
// [7, 5000] x [5000, 300] float 209.8 -> 34.9 (8), [100, 3000] x [3000, 20] double 309.9 -> 43.1 (8), r43's [2328,
// 657] x [657, 61] double 38.2 -> 25.4 (3), r23's [15, 686] x [686, 3860] double 44.5 -> 25.9 (4), r60's 24.6 -> 21.9
// (2); r51's 2 steps 13.3 unsplit, 19.6-20.7 split (docs/limits.md section 45).
constexpr int64_t kGemmMaxSplits = 8;
constexpr int64_t kGemmMinSplitSteps = 3;
constexpr int64_t kGemmMaxSplitValues = int64_t{1} << 22;

// --- Sizing the fused launch (plan_launch in ops_cuda.cpp) -------------------------------------------------------

// Tuning constants. A reading block streams one tile of x of at most kMaxTileBytes. Measured on the H100 (forward
// of the 1 GiB headline, share of torch's sum): 16 KiB tiles 0.48, 32 KiB 0.82, 64 KiB 0.96, 128 KiB 0.975,
// 256 KiB 0.966; 128 KiB was also best or within 2% of best for bf16, skinny, short_rows, mid and odd509 (a
// block's start and its ticket cost a fixed time; larger tiles leave a longer tail). Smaller x gets smaller
// tiles, down to kMinTileBytes, so that every resident block slot has one.
constexpr int64_t kMaxTileBytes = 128 * 1024;
constexpr int64_t kMinTileBytes = 4 * 1024;
// Values of W.sum((2,3)) one epilogue unit multiplies by: its GEMM is short, so the unit finished last (the only
// one not hidden behind other blocks' reads) adds little.
constexpr int64_t kUnitWeightValues = 16384;
// Batch tiles are sized so that re-reading W.sum once per tile costs at most about 1/kWeightRereadShare of the
// bytes of x.
constexpr int64_t kWeightRereadShare = 16;
// Self-contained tiles fold W.sum from the weight in every block: only for weights this small (values). W.sum and
// the summed biases ([C, C_out] + [C_out]) then live in the stage past the reduce buffer
// (self_contained_stage_values), staged while the tile's loads fly.
constexpr int64_t kSelfContainedWeightValues = 4096;
constexpr int64_t self_contained_stage_values(int64_t channels, int64_t c_out) { return (channels + 1) * c_out; }

// Scratch memory a launch may take besides its outputs: at most kWorkspaceInputShare times the bytes of its inputs,
// or kWorkspaceFloorBytes for small inputs. Epilogue units are widened, and then the batches cut into several
// launches, to stay within it (the units' shares of the GEMM, zpart, grow with B * C_in * C_out^2 otherwise).
constexpr int64_t kWorkspaceInputShare = 2;
constexpr int64_t kWorkspaceFloorBytes = int64_t{64} << 20;

// The widest epilogue unit, in channels: a unit's sums take at most kMaxUnitSums values of shared memory, with its
// batches padded to a multiple of four.
constexpr int64_t kWidestUnitChannels = kMaxUnitSums / 4;

// padding's tap kernels (taps.cu). tap_sums cuts planes (or slices of channels) into runs of rows until there are
// kTapWarpsPerResidentWarp times as many runs as resident warps, one warp each: with about 2 runs per resident warp,
// a grid-stride split left a third of the warps idle in its last round (H200 headline padding 1: 377 us against 252
// without padding; 363 with 4 runs); the standalone copy of the reader took 266.6 us at 4 runs and 252.2 at 8
// (docs/limits.md §30).
constexpr int64_t kTapWarpsPerResidentWarp = 8;
// ... but no run shorter than this many bytes of x where a plane (or a slice of channels) is longer (plan::
// tap_run_chunks): a run's fixed costs (its index arithmetic, partials, the combine's adds) and its few trips of
// loads in flight (2 KiB a warp for the span walk) weigh little over 8 trips. The headline's runs (16 rows of 2 KiB)
// were longer already; sweep shapes of small planes, or of few planes or slices, ran runs of 0.7-2.5 KiB: r10 [4844,
// 2, 31, 44] float16 4 runs of 8 rows (now 1), r30 [66, 12, 25977, 1] float16 43 runs of 1.2 KiB (now 3), r20 [16,
// 197, 186, 20] float32 channels-last 93 runs of 2 rows of 16 channels (now 14). H200, padding 1 over padding 0's
// forward (bench/padding_groups.py, docs/limits.md §63): r30 1.544 -> 1.233, r20 1.529 -> 1.321, r10 2.448 -> 1.952,
// r60 2.199 -> 2.092, the headline 1.039 either way. 16 KiB had bound where units are too few for the waves rule's
// longer runs (below): 8 KiB against 16 in one run (padding 1 / padding 2 over padding 0's forward, docs/limits.md
// §65): r20 (14 -> 20 runs a slice) 1.376 / 1.553 -> 1.246 / 1.444, r30 (3 -> 5 runs a plane) 1.236 / 1.318 -> 1.195 /
// 1.264; no other sampled row's runs change.
constexpr int64_t kTapMinRunBytes = 8192;
// ... and as few more than runs of kTapLongRunBytes as the waves of resident warps ask (plan::tap_run_chunks: a warp a
// run, so the reader takes about its waves times a run's time, a run's time its bytes plus kTapRunFixedBytes): long
// runs pay their fixed costs (index arithmetic, partials, the combine's adds) less often, but a last wave of a few
// runs costs a whole run's time. H200, padding 1 over padding 0's forward, each least run forced for every unit (16 /
// 32 / 64 / 128 KiB; docs/limits.md §64): r35 [199, 4, 88887, 1] float64 (796 planes of 711 KiB) 1.137 / 1.076 /
// 1.077 / 1.064, r40 [11, 185, 1178, 89] float32 sliced (2035 planes of 419 KiB) 1.317 / 1.291 / 1.276 / 1.490, r55
// [177, 33, 466, 25] float64 channels-last (885 slices of 652 KiB) 1.389 / 1.322 / 1.297 / 1.358, the headline 1.040 /
// 1.040 / 1.045 / 1.115; units too few for long runs lost: r30 [66, 12, 25977, 1] float16 (792 planes of 52 KiB)
// 1.252 -> 1.672 at 32 KiB, r20 [16, 197, 186, 20] float32 channels-last (208 slices) 1.368 -> 1.717 / 2.850 /
// 7.104. A first rule, runs of 64 KiB while they were at least 2 a resident warp, took r35 to 11 runs a plane (3
// waves, the last of 308 runs) and r55 to 10: 1.219 and 1.519 in the same run as 1.146 and 1.407 under the old one.
// The fixed cost, as bytes a run could have read, is fitted to those rows: it picks their best measured counts (r35
// 10 runs, r40 6, r55 9, the headline 16, r30 3, r20 14).
constexpr int64_t kTapLongRunBytes = 65536;
constexpr int64_t kTapRunFixedBytes = 8192;
// The tap reader's 16-byte loads in flight per lane, and its blocks per SM (registers capped to fit them). With 8
// loads, 98 registers held it to 2 blocks: 78% of DRAM's throughput under Nsight Compute where the plane-lanes
// reader, at 4 blocks, reached 92% (H200 headline padding 1, docs/limits.md §30).
constexpr int kTapVectorLoads = 4;
constexpr int kTapBlocksPerSm = 4;
// The rows walk's border rows whose loads are in flight together (kernels/read_tap_rows.cuh tap_run): r33 [7000, 40,
// 6, 168] bfloat16 at padding 3, six border rows a plane, waited on a round trip a row (docs/limits.md §90). Two at
// once: r33's forward at padding 1 / 2 / 3 0.87 / 0.87 / 0.94 of main's (H100, §91). Four spilled
// tap_grid_kernel<bfloat16, 0 or 1 or 2, kRowsWalk> (sm_90); float64 keeps a row at a time with its eight loads, as
// two rows of four spilled <double, 0 and 2, kRowsWalk>.
template <typename T> constexpr int kBorderRowsAtOnce = sizeof(T) == 8 ? 1 : 2;
// The staged walk's border rows of a piece at a time (kernels/read_tap_rows.cuh staged_border_rows), where a piece
// has more than 2 (2 at a time where it has 1 or 2). Registers: 8 (float64 4) spilled 88-168 bytes in every staged
// instance on sm_89 and sm_90 (ptxas 13.0). With 4, r16 of the sweep at padding 2 / 3 took 0.936 / 0.948 of the
// forward's time a row at a time (H100, docs/limits.md §121).
template <typename T> constexpr int kStagedBorderRows = sizeof(T) == 8 ? 2 : 4;
// The rows walk's stage (kernels/read_tap_rows.cuh staged_walk, for rows that are not whole 16-byte vectors): at most
// this many bytes of shared memory a warp, less where kTapBlocksPerSm blocks of stages would not fit the
// multiprocessor's shared memory or a block's 48 KiB without opting in (the sm_89 RTX 4090's 100 KiB: 3 KiB a warp); no
// stage where a row's span does not fit it (rows of at least 4 KiB meet a straddling vector or a border a few times in
// hundreds). H200, padding 1 over padding 0's forward, the span walk before and the stage after (the same least run,
// docs/limits.md §64): r10 [4844, 2, 31, 44] float16 sliced 2.023 -> 1.806 (the reader 33.0 -> 24.2 us under Nsight
// Compute; padding 3 3.162 -> 2.873), r40 [11, 185, 1178, 89] float32 sliced 1.317 -> 1.157 (padding 3 1.523 -> 1.136
// with the waves' runs), r60 [73, 276, 12, 123] float32 2.088 -> 2.154: its 10 middle rows of 492 bytes take two
// pieces, as many round trips as the span walk's.
constexpr int32_t kTapStageMaxBytes = 4096;
// The longest row the rows walk stages (plan::tap_rows_staged); longer rows take the span walk's vectors, whose
// element-by-element path is then a small share of a row. H200, padding 1, the tap reader's kernel (torch.profiler,
// us, staged / span walk forced, docs/limits.md §85): r48 [5, 3, 5033, 559] float32 (rows of 2236 bytes) 86.7 / 42.9;
// below, the stage won on every row measured: r29 (524 bytes) 78.7 / 95.3, r49 (488) 48.3 / 65.5, r60 (492) 41.4 /
// 49.2, r41 (406) 20.3 / 24.9, r61 (354) 15.6 / 18.3, r16 (156) 293 / 426, r10 (88) 16.1 / 31.0, r57 (78) 128 / 276.
// At 1024 bytes, r19 [41, 1, 574, 185] float64 (rows of 1480 bytes) took the span walk and its padding-3 forward ran
// 1.08x main's, which staged it (H100, docs/limits.md §88). 1536 lies between the longest row the stage won on and the
// one it lost; no row between 1480 and 2236 bytes was measured.
constexpr int64_t kTapStageMaxRowBytes = 1536;
// The rows walk's middle rows summed whole where x's rows follow each other with no gap (kernels/read_tap_rows.cuh
// middle_by_span: 16-byte loads over the span, no vector's columns looked at, each row's border columns loaded apart
// and taken off the middle's sum; plan::tap_middle_by_span): rows of at least kTapSpanSumMinRowBytes, borders of at
// most kTapSpanSumMaxBorderSide columns a side, and at least kTapSpanSumMinWidthPerBorderColumn elements per border
// column (each then a scalar load a row beside a row's W / (16 / element bytes) vector loads). H100, the forward over
// the same forward with the stage or the span walk (forced), public sweep at padding 1 / 2 / 3 (docs/limits.md §99):
// r61 (rows of 354 bytes) 0.866 / 0.979 / 1.002, r49 (488) 0.964 / 0.955 / 1.007, r29 (524) 0.985 / 0.981 / 1.002,
// r60 (492) 0.998 / 1.010 / 1.042, r48 (2236) 1.005 / 1.011 / 1.009; but r16 (156) 1.024 / 1.040 / 1.166, and
// borders of 3 (in shared memory, the vectors added before the border columns' loads) r44 1.045, r51 1.056.
// Whole-vector rows keep their own path: the headline's padded forward runs at 1.035-1.042 of its padding-0 one
// (H200). This rule, the same A/B at padding 1 / 2 (H100, §100): r61 0.874 / 0.963, r49 0.955 / 0.948, r29 0.986 /
// 0.982, r19 0.995 / 0.993, r60 0.998 / 1.010, r48 1.009 / 1.000; r16 and r44, which it leaves, 1.000.
constexpr int64_t kTapSpanSumMinWidthPerBorderColumn = 4;
constexpr int64_t kTapSpanSumMaxBorderSide = 2;  // at most 2: the walk keeps its border sums in registers alone
constexpr int64_t kTapSpanSumMinRowBytes = 256;
// The staged walk's span sums (kernels/read_tap_rows.cuh staged_walk's kSpanSums; plan::tap_staged_span_sums): rows
// that follow each other with no gap and at least this many elements per border column (a lane loads each middle row's
// border columns apart and adds every staged vector, where the column walk adds each middle column once). H100, the
// padded forward with the span sums for every such staged row (a run-time flag, s109) over the walk without them
// (docs/limits.md §123), by W / border columns: 29-44 gained, r61 0.944, r29 0.957, r49 0.960, r19 0.974 at padding 3;
// r16 at 19.5 and 9.75 0.986 and 0.983 (padding 1, 2); lost at 7.7 and below, r51 1.038 (padding 3), r44 1.009, r46
// (3 a column) 1.081. The flag cost the staged rows it did not take 1.01-1.05x besides (r41, r57, r10): the walk with
// span sums is an instance of its own now (cuda/taps.cu kStagedSpanWalk).
constexpr int64_t kStagedSpanSumMinWidthPerBorderColumn = 8;
// The combining launch's blocks per SM (registers capped to fit them) where borders are at most 2 columns a side: a
// warp per plane, each a few round trips to L2, so the planes resident at once set its time. At 100 registers, 2
// blocks fit (H200, sweep shape r10 [4844, 2, 31, 44] float16 at padding 1: 16.0 us under Nsight Compute, a third of
// the tap reader's). 3 fit without spilling on sm_90; 4 spilled in every instance. Wider borders keep the
// uncapped kernel (it spilled at 3).
constexpr int kTapCombineBlocksPerSm = 3;
// Padding's combine without shares by groups of lanes (plan::tap_combine_lanes) only where x has at least this many
// planes a multiprocessor: fewer, and the warp per plane (tap_combine_kernel, 16-24 warps an SM resident) runs them
// all in about one round, its cells and taps in shared memory where the group combine sums each tap's cells from L2.
// H100, the forward at padding 1-3, group combine at its best lane count over the warp per plane (combine_lanes.py,
// docs/limits.md §116): r20 of the sweep (3152 planes, 23.9 an SM) 1.060 at padding 2 whatever the lanes, 0.981 at
// 3; r51 (1794) 0.996 / 0.955; r02, r12, r44 (64-395 planes of many runs) 0.98-1.023; r55 (5841, 44 an SM)
// 0.979-0.995; r41 (6756) 0.900 / 0.847; r10 (9688) 0.907 / 0.879; r57 (13668) 0.927-0.961.
constexpr int64_t kTapGroupCombineMinPlanesPerSm = 32;
// ... and at most this many lanes a plane (raised to cover a plane's runs): 16 was no faster than 8 on any sweep pair
// and slower on most (same runs: r10 padding 3 0.908 against 0.879, r41 0.870 / 0.853, r16 0.739-0.825 against
// 0.667-0.755, r37 0.937-0.965 / 0.921-0.950), and the rule's fewer lanes where the planes are many gain a little more
// (r16 2 lanes 0.670-0.732).
constexpr int32_t kTapGroupCombineMaxLanes = 8;
// plan::tap_combine_own_taps: each plane's taps by its own group's lanes, the middle row's cells in registers, only
// for groups of at most this many lanes (tap_combine_lanes gives those where the planes are a quarter of the resident
// lanes or more). H100, always over never (s120 against main, tap_reader_ab.py, docs/limits.md §126): r16 (228748
// planes, 2 lanes) 0.991 / 0.953 / 0.928 at padding 1-3; at 8 lanes r10 (9688 planes, 12 taps) 1.038 / 1.077 at
// padding 2-3, r60 p3 1.033, r41 p3 1.031, r55 p3 1.026, r37 and r57 level; forwards whose kernels did not change moved
// by up to 1.04 in that run. Its likely costs, not measured apart: 80 registers a thread, not 60 (3 blocks an SM, not
// 4), and the selects over a kSide-0 cut's widest partials.
constexpr int32_t kTapOwnTapsMaxLanes = 2;
// The lane groups' combine: a lane's runs' partials loaded a trip (combine_taps.cuh add_runs), about this many values:
// 4 runs of kSide 1's 3 partials, 2 of kSide 2's 5. A guess, not yet timed: a plane of many runs (r63 of the sweep, 7
// planes of 5.5 MB float64) took 7.9 us in its combine, each of a lane's ~21 runs a round trip to L2 (H100, Nsight
// Compute, docs/limits.md §129).
constexpr int kTapCombineRunValues = 12;
// plan::tap_weight_way: the weight over taps ahead of the tap sums, their reader beside it, only for x of at most this
// many bytes. H100, the cells' weight kernel ahead with the reader beside it over ATen's copy after the combine
// (taps_weight_ab.py, docs/limits.md §117): r02, r10, r41, r61 of the sweep (8-37 MiB of x, 20-60 us forwards)
// 0.82-0.95, r60 (113 MiB, its weight 52) 0.965 / 0.983; on larger x at most 1-2.5% (r55, r57, 371-519 MiB) and
// r37 (489 MiB bfloat16 channels-last, k 2 x 1) 1.03-1.05, its cause not found.
constexpr int64_t kTapWeightBesideMaxXBytes = int64_t{128} << 20;
// ... and ahead of tap sums whose reader cannot run beside it (the small-plane kernels, the keep GEMM) only for a
// weight over taps (of the accumulation type) of at most this many bytes: there it runs alone, and the GEMM then
// reads it from memory where ATen's copy after the tap sums leaves it in L2. Same runs: r13, r46 (under 1 MiB)
// 0.96-0.98; r18 (39 MiB, keep GEMM) 1.055-1.080, r06 (72 MiB, small planes) 1.035-1.047.
constexpr int64_t kTapWeightAheadMaxRowsBytes = int64_t{4} << 20;
// The channels walk's slices of C (plan::channel_walk_slices): each group of a slice's lanes loads at least this many
// bytes of neighbouring channels. H200, the forward at padding 1 with each slice count forced (do_bench, us): r55 of
// the sweep ([177, 33, 466, 25] float64 channels-last, k 5 x 3) 275.3 at 2 slices of 17 lanes (ceil(C / 32), the rule
// before), 244.8 at 3, 236.6 at 5 (7 lanes, 4 position groups), 240.2 at 9, 256.4 at 17, 288.9 at 33; r20 ([16, 197,
// 186, 20] float32) 57.5 at 7 (29 lanes), 51.2 at 13 (16 lanes, 2 groups), 52.4 at 25, 57.9 at 50. Narrower groups
// load as many lines as they have positions (docs/limits.md §62).
constexpr int64_t kChannelWalkMinGroupBytes = 48;
// The channels walk row by row (TapSumsArgs::channel_rows) where a lane takes a column (position_lanes 1) of float32
// rows of at least this many: 8 trips of kTapUnroll loads a row, the last one part full. Else the flat walk, whose
// lanes' loads run on into the next rows. H200, padding 1, forward over padding 0's, flat against row by row
// (docs/limits.md §82): float32 [1, 64, 2048, 2048] 1.317 / 1.190, [16, 64, 512, 512] 1.309 / 1.204, r38's
// [9, 73, 229, 153] 1.407 / 1.417, [64, 40, 100, 70] 1.093 / 1.085; in float16 and bfloat16 the forward row by row
// took 2.0-2.5x the flat walk's on each of them (r38 float16 1.962 / 4.409), so 2-byte x walks flat (float64: not
// measured, flat). r21 [2, 9, 22087, 189] bfloat16 (2 lanes across a row) took 149 against 309 (docs/limits.md §81).
constexpr int64_t kChannelRowsMinColumns = 64;
// The element walk's loads per lane in flight (where rows are too far apart for 16-byte loads), and a border row's:
// 16 of 2-byte elements spilled registers under tap_grid_kernel's cap.
constexpr int kTapUnroll = 8;
// Rows narrower than this, with gaps too wide for the span walk between them, keep ATen's tap sums (tap_path; its
// explain text names the width): the element walk reads each plane in a few round trips of loads spread over many
// rows. H200, x [10253, 127, 333, 1] bfloat16 rows 3 apart, padding 1: 3.04 ms by the tap kernels, 1.36 by ATen
// (the padding-0 forward 0.65).
constexpr int64_t kTapElementWalkMinWidth = 16;
// The cropped GEMM's shares by the tap kernels' combining warps (ops_cuda.cpp, tap_shares_apply): while the weight
// values they read from L2 (C_out per tap of each plane, no reuse between batches) are at most this share of x's
// bytes, their reads cost a fraction of x's.
constexpr double kTapSharesWeightReadShare = 0.25;
// ... and while a combining warp's shares are a short loop (plan::tap_shares_short): planes no more than the
// combining warps resident at once (multiprocessors x kTapCombineBlocksPerSm x kWarpsPerBlock; past that a warp runs
// another plane's chain of round trips), and at most this many trips of weight loads a plane (tap_share_columns x 32
// columns by kTapShareTaps taps a trip). Else the planner's epilogue over the taps or cells. H200, padding 1 over
// padding 0's forward, the shares against that epilogue: r44 [79, 5, 15703, 30] float32 -> 2739, k 3 x 5 (44 trips)
// 1.423 against 1.070; r12 (6 trips) 1.207 / 1.096; r63 (7) 1.371 / 1.270; r41 (6756 planes, 3 rounds) 2.430 /
// 1.842; r16 (228748 planes) 2.872 / 2.483; the headline (2 trips) 1.036 / 1.059; r31 (4) 1.035 / 1.068; r48 (3)
// 1.514 / 1.561. At 3 or 4 trips some rows gained without the shares (r19, r34, r35: 2-3 us) and some lost (r31: 4
// us); r37 (34536 planes, the channels walk) lost 13 us of 366 (docs/limits.md §81).
constexpr int64_t kTapSharesMaxTrips = 4;
// tap_combine_kernel's trip over a plane's shares: a lane's columns (32 apart) and the taps whose weights it loads
// at once, for an accumulation type of acc_bytes bytes (float64's 32 loads in flight spilled registers).
constexpr int tap_share_columns(int64_t acc_bytes) { return acc_bytes == 8 ? 2 : 4; }
constexpr int kTapShareTaps = 8;
// The shares' sum over channels and the logsumexp in one launch (shares_lse_kernel, a block per row) while a block's
// threads load at most this many shares each (H200 headline padding 1: 32 each, the launch ending 3.4 us after the
// combine's); beyond, torch's sum over the channels and then bias_lse, whose reduction spreads a row over the
// device. Not measured at the limit.
constexpr int64_t kSharesLseMaxLoads = 64;
// The padded forward's GEMM over x's elements where it lies (ops_cuda.cpp, element_gemm), where the cells are not x's
// elements, wherever the planner's time for it is at most kElementGemmShare of its time for the padding-0 forward of
// the same x (the GEMM then hides behind the read, as padding 0's does), or at most the time the tap readers would
// take at their best rate measured, kTapReaderElementsPerSmUs elements a microsecond per multiprocessor: r39 of the
// sweep at padding 1 ([24312, 68, 6, 4] float64 channels-last, k 3 x 1), 39.7M elements in 107.8 us on an H100 (132
// multiprocessors), the whole forward. Others ran slower: r54 ([273068, 18, 23, 3] float16 channels-last, k 3 x 3)
// 339M in 1322 us (1940 a multiprocessor), r53 ([110640, 12, 1, 4] bfloat16 channels-last, k 5 x 2) 5.3M in 56 us;
// a standalone GEMM over x's elements took r54 and r53 in 646 and 22 us (docs/limits.md §109).
constexpr double kElementGemmShare = 1.25;
constexpr double kTapReaderElementsPerSmUs = 2800.0;
// ... for x of this many bytes and more (the public sweep's smallest): below, the planner's times are mostly its launch
// terms (29-36 us on the H200's properties for x of 1-2 MB), which tell neither path's reads apart.
constexpr int64_t kElementGemmMinBytes = int64_t{8} << 20;
// Padding's tap sums of 16-bit x by one GEMM over a 0/1 keep matrix (ops_cuda.cpp keep_gemm_applies): planes of
// kKeepGemmMinElements to kKeepGemmMaxElements elements, 16-byte aligned where over kKeepGemmUnalignedMaxElements,
// kKeepGemmMinPlanes of them or more. H100, cuBLAS's GEMM alone (torch.mm with out_dtype float32;
// bench/experiments/device_calls/keep_gemm.py, docs/limits.md §111) against the whole padded forward at padding 1-3,
// us: r18 ([70, 445, 54, 64] float16) 92 against 229-258; r33 ([7000, 40, 6, 168] bfloat16) 282 against 359-714; r46
// ([96, 256, 100, 6] float16, batches sliced) 24 against 43-89; r13 ([18415, 8, 5, 6] bfloat16) 20 against 41; r45
// ([348652, 10, 4, 8] bfloat16) 310 against 456-540. It lost on planes of 6 elements or fewer (r01 198 against 85, r50
// 561 against 150), of 26596 (r49 82 against 71-81) and on few planes (r61, 114 of 146910 elements: 1176 against
// 35-46); r17 ([551, 36, 514, 8] bfloat16, planes of 4112) 106 against 86 at padding 1, 123 and 138 at 2 and 3. As
// whole forwards (the GEMM over taps after it; device_calls/callE2K.sh, H100, docs/limits.md §112), against the tap
// paths before it, us: where the rows walk's GEMM runs over taps, r18 201-203 against 227-258, r33 at padding 2 and 3
// 340 against 702-725, r46 45 against 76-90, but r17 (20 taps) 132 against 124 at padding 2 (and 132 against 138 at 3);
// where it runs over fewer cells than taps, r17 132 against 85 at padding 1, r46 45 against 43 (r33 341 against 355);
// against the small-plane kernels, slower always: r13 56 against 40-42, r45 916 against 453-541 (348652 batches of 10
// planes, one small GEMM each), and 8 of the 9 made-up problems of plan_changes.py that took them (1.03-1.65x; m13 307
// against 309). So by the rule: the rows walk's GEMM over taps alone. That A/B (s92, kernels of at most 16 taps) also
// lost on made-up planes: k06 ([400, 32, 90, 90] bfloat16, planes of 8100 elements, not 16 bytes apart, 15 taps) 250
// against 128 at padding 2, k10 ([8192, 1, 64, 64] float16, 9 taps) 125 against 95-104, k05 ([2000, 64, 32, 32]
// float16, 9 taps) 303 against 278 at padding 1 (and won at 2 and 3). keep's columns are rounded up to
// kKeepGemmColumnMultiple: H100, the GEMM alone (keep_gemm.py's one_stage_pad), r33's 10 taps 281 -> 238 us (x.sum
// 211), r17's 20 taps 107 -> 75 (x.sum 74), where keep's rows and the GEMM's were not 16 bytes apart. With them (s93,
// keep_ab.py on an H100, §113), forced on against off where the rows walk's GEMM runs over taps: faster on every
// made-up problem of 8192 planes or more (k10 0.90-0.99, k14 and k22 0.75-0.91 on 8192-16384 planes of 4096 elements,
// k11 0.57-0.70 on 12800 of 1920) but k06 (planes of 8100 elements, not 16 bytes apart: 1.06-1.16; k16, the same with
// 8096, 0.84-0.92); planes of 900 not 16 bytes apart 0.43-0.86 (k13, k18). Past kKeepGemmMaxElements, even forced,
// never: r29's bfloat16 planes of 4.2M elements came out 2.1-2.5% off the float64 model (its tolerance 0.8%), the
// tensor cores' float32 sums not rounded to nearest.
constexpr int64_t kKeepGemmMinElements = 16;
constexpr int64_t kKeepGemmMaxElements = 8192;
constexpr int64_t kKeepGemmUnalignedMaxElements = 1024;
constexpr int64_t kKeepGemmMinPlanes = 8192;
constexpr int64_t kKeepGemmColumnMultiple = 8;

}  // namespace fusedlse
