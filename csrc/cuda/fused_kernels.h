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
// x is cut into `items`, `splits` consecutive items per group: a group is one row (kRows) or `channels_per_item`
// channels of one batch (kChannelsLast); an item is `chunk` consecutive positions of its group. The reading
// blocks are persistent: warp w of reduce_blocks * 8 owns the contiguous item range [items*w/W, items*(w+1)/W).
struct LaunchPlan {
  int64_t splits = 1;
  int64_t chunk = 0;
  int64_t items = 0;
  int64_t channels_per_item = 1;  // kChannelsLast only
  int64_t channel_blocks = 1;     // kChannelsLast only
  int vec = 1;                    // kChannelsLast: channels per 16-byte load (1: scalar loads)
  int64_t reduce_blocks = 0;      // blocks that read x
  int64_t wsum_blocks = 0;        // blocks that fold weight.sum((2,3)) into the launch (kForward only)
  // Epilogue: a unit is `unit_rows` consecutive channels of one batch; there are `groups` units per batch.
  int64_t unit_rows = 1;
  int64_t groups = 1;
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
  const void* bias;       // C_out elements of `kind`, element n at n*bias_stride
  int64_t bias_stride;
  double scale;           // 1 / (H_out * W_out)
  void* out;              // kForward: [B] in `kind`; kSumsOnly: [B, C_in] accumulation type
  void* partials;         // [B*C_in*splits] accumulation type, written sparsely; aliases `sums` when splits == 1
  void* sums;             // [B, C_in] accumulation type
  void* wsum;             // [C_in, C_out] accumulation type, written by the launch
  void* zpart;            // [B, groups, C_out] accumulation type (groups > 1)
  int* unit_tickets;      // [B*groups], zero between launches; the kernel resets what it uses
  int* batch_tickets;     // [B], likewise
  LaunchPlan plan;
};

// sums [B, C_in], weight_sum [C_in, C_out], total_bias [C_out] -> out [B], all float or all double.
struct GemmLseArgs {
  bool is_double;
  const void* sums;
  const void* weight_sum;
  const void* total_bias;
  void* out;
  void* zpart;            // [B, groups, C_out]
  int* batch_tickets;     // [B], zero between launches
  int64_t batch, channels, c_out;
  int64_t unit_rows, groups;
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
// Minimum resident blocks per SM the kernels are compiled for (caps registers at 128 per thread; no kernel spills).
constexpr int kMinBlocksPerSm = 2;
// Per-warp shared scratch: the channels-last lane combine and the epilogue's unit sums.
constexpr int kWarpScratchBytes = 1024;
// Upper bound on unit_rows: a unit's sums live in its warp's scratch (128 doubles).
constexpr int64_t kMaxUnitRows = 128;

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
