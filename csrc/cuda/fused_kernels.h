// Plain-C++ interface between the ATen glue (fusedlse_cuda.cpp) and the kernels (fused_kernels.cu).
// Nothing from torch is included here, so the .cu file compiles without ATen's heavy headers.
#pragma once

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

// Work decomposition, chosen on the host by plan_launch() in fusedlse_cuda.cpp (the only place that sizes it).
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
//  Self-contained tiles (self_contained set; kRows only): block i reads whole batch tile i, which is
//    contiguous in memory, and runs its epilogue itself, folding W.sum from the weight as it goes: no tickets,
//    no weight-fold blocks. For small problems, where a chain of tickets would cost more than the reads.
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
  const void* weight;     // [C_in, C_out, kH*kW] contiguous, `kind` (kForward)
  int64_t c_out, kernel_area;
  const void* conv_bias;  // [C_out] `kind`, or nullptr
  const void* bias;       // C_out elements of `kind`, element n at n*bias_stride (0: one value for every n)
  int64_t bias_stride;
  double scale;           // 1 / (H_out * W_out)
  void* out;              // kForward: [B] in `kind`; kSumsOnly: [B, C_in] accumulation type
  void* partials;         // [B*C_in*splits] accumulation type; aliases `sums` when splits == 1
  void* sums;             // [B, C_in] accumulation type
  void* wsum;             // [C_in, wsum_stride] accumulation type, written by the launch (unused by self-contained
                          // tiles); 16-byte aligned
  int64_t wsum_stride;    // C_out rounded up to whole 16-byte pieces (weight_sum_stride)
  void* zpart;            // [B, unit_groups, C_out] accumulation type: each unit's share of the GEMM
  // Null when plan.tickets is false (nothing is counted). The launch's own, zeroed just before it:
  int* unit_tickets;      // [tiles * unit_groups]
  int* batch_tickets;     // [tiles]
  LaunchPlan plan;
};

// sums [B, C_in], weight_sum [C_in, C_out], total_bias [C_out] -> out [B], all float or all double.
struct GemmLseArgs {
  bool is_double;
  const void* sums;
  const void* weight_sum;  // [C_in, weight_sum_stride], 16-byte aligned
  int64_t weight_sum_stride;  // C_out rounded up to whole 16-byte pieces (weight_sum_stride)
  const void* total_bias;
  void* out;
  void* zpart;            // [B, unit_groups, C_out]
  int* batch_tickets;     // [tiles], zeroed just before the launch
  int64_t batch, channels, c_out;
  int64_t unit_batches, unit_channels, unit_groups, tiles;
  double scale;
};

// broadcast_hw: out[b, c, h, w] = rows[b, c], the backward's write of grad_x.
struct BroadcastArgs {
  ScalarKind kind;     // of out; rows are its accumulation type
  bool channels_last;  // out's layout: element (b, c, p) at (b*C + c)*plane + p, or at (b*plane + p)*C + c
  const void* rows;    // [B, C] contiguous
  void* out;           // [B, C, H, W], 16-byte aligned
  int64_t batch, channels, plane;
  int64_t blocks;      // grid size, from the host (broadcast_hw_cuda in fusedlse_cuda.cpp)
};

constexpr int kBlockThreads = 256;
constexpr int kWarpsPerBlock = kBlockThreads / 32;
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

// Values between rows of W.sum as the kernels read it: C_out rounded up to a whole number of 16-byte pieces of the
// accumulation type, so that every row starts 16-byte aligned.
constexpr int64_t weight_sum_stride(int64_t c_out, int64_t acc_bytes) {
  return (c_out * acc_bytes + 15) / 16 * 16 / acc_bytes;
}

// Resident blocks of the fused kernel per multiprocessor, from the occupancy calculator.
int fused_blocks_per_sm(ScalarKind kind, XLayout layout);

// Resident broadcast_hw blocks per multiprocessor, from the occupancy calculator.
int broadcast_blocks_per_sm(ScalarKind kind);
// 16-byte stores each thread has in flight per loop trip (sizes the grid).
constexpr int kBroadcastVectorsPerThread = 4;

cudaError_t launch_fused(const FusedArgs& args, cudaStream_t stream);
cudaError_t launch_broadcast_hw(const BroadcastArgs& args, cudaStream_t stream);
cudaError_t launch_gemm_lse(const GemmLseArgs& args, cudaStream_t stream);

}  // namespace fusedlse
