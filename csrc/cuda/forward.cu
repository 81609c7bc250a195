// The fused forward in one launch, one-shot: no block waits for another.
//   blocks [0, wsum_blocks)          fold weight.sum((2,3)) into wsum, one unit channel group each;
//   blocks [wsum_blocks, grid end)   read one tile of x each (a piece of a row or of a channel group, or a few
//                                    whole short rows) and write its partial sums.
// A block then counts its items against the epilogue units they belong to (a tile of batches x a group of
// channels), one atomic ticket per unit. The block that completes a unit sums the unit's partials in a fixed order
// and computes the unit's share of the GEMM; the block that completes a batch tile's last unit adds the shares in
// unit order, adds the biases and takes the logsumexp. Every sum runs in a fixed order, so the result is bitwise
// reproducible. The tickets are the launch's own, zeroed by the host just before it (ops_cuda.cpp).
// For small x (plan.self_contained), a kernel of its own: each block reads whole batches, folds W.sum from the weight
// and sums the biases into shared memory while its loads fly, and finishes the batches from there alone: no fold
// blocks, no tickets, no scratch. Its registers are not the fused kernel's: run as one of the fused kernel's units,
// a finish from shared memory spilled it (docs/limits.md §28), and its share of the GEMM went through L2.
//
// Only CUDA headers are included: see kernels.h. The stages, in the order x flows through them, are in kernels/.

#include "kernels.h"
#include "kernels/dtype.cuh"
#include "kernels/load.cuh"
#include "kernels/reduce.cuh"
#include "kernels/units.cuh"
#include "kernels/read_planes.cuh"
#include "kernels/read_channels_last.cuh"
#include "kernels/tickets.cuh"
#include "kernels/epilogue.cuh"
#include "launch.cuh"

namespace fusedlse {
namespace {

template <typename T, XLayout kLayout>
__global__ void __launch_bounds__(kBlockThreads, kMinBlocksPerSm<T>) fused_kernel(const __grid_constant__ FusedArgs a) {
  using A = acc_t<T>;
  // The reads' cross-thread sums (kReduceBytes) and the epilogue's W.sum stage share one buffer: a block does one,
  // then the other.
  __shared__ __align__(16) unsigned char stage_bytes[kStageBytes];
  __shared__ __align__(16) A unit_sums[kMaxUnitSums];
  __shared__ int64_t done[kBlockThreads];  // units completed by this block
  __shared__ int done_count, flag;
  A* reduce = reinterpret_cast<A*>(stage_bytes);
  const EpilogueShared<A> shared{unit_sums, reduce, &flag};
  // The epilogue's arguments are made where they are used, from the kernel's (constant) parameters: kept live
  // through the reads, they would take registers the loads need.
  const UnitGrid grid{a.batch, a.channels, a.plan.unit_batches, a.plan.unit_channels, a.plan.unit_groups};
  const bool fold_block = blockIdx.x < a.plan.wsum_blocks;
  const int64_t tile = static_cast<int64_t>(blockIdx.x) - a.plan.wsum_blocks;
  const int64_t fold_group = fold_block ? blockIdx.x / a.plan.fold_pieces : 0;
  if (fold_block) {
    fold_weight_piece<T>(a, fold_group, blockIdx.x - fold_group * a.plan.fold_pieces);
  } else if constexpr (kLayout == XLayout::kRows) {
    if (a.plan.rows_per_warp > 0) {
      const int64_t first = tile * a.plan.rows_per_block;
      read_whole_rows<T>(a, grid, first, imin(first + a.plan.rows_per_block, a.batch * a.channels));
    } else {
      read_row_item<T>(a, tile, reduce);
    }
  } else {
    constexpr int kVec = 16 / sizeof(T);
    if (a.plan.vec == kVec) {
      read_channels_last_item<T, kVec>(a, tile, reduce);
    } else {
      read_channels_last_item<T, 1>(a, tile, reduce);
    }
  }
  if (!a.plan.tickets) return;
  // Count this block's writes (the ticket adds release them, see ticket_add). A reading block counts its tile's
  // items; a fold block tells unit (tile, fold_group) of every tile, up to kBlockThreads tiles per round. One call
  // site for the epilogue keeps the kernel within its registers.
  const int64_t rounds = fold_block ? (a.plan.tiles + kBlockThreads - 1) / kBlockThreads : 1;
  for (int64_t round = 0; round < rounds; ++round) {
    __syncthreads();  // this block's writes are done (first round); the previous round's epilogues are done
    if (threadIdx.x == 0) done_count = 0;
    __syncthreads();
    if (fold_block) {
      const int64_t unit_tile = round * kBlockThreads + threadIdx.x;
      if (unit_tile < a.plan.tiles) arrive(a, grid, unit_tile * a.plan.unit_groups + fold_group, 1, done, &done_count);
    } else if (threadIdx.x == 0) {
      arrive_tile(a, grid, tile, done, &done_count);
    }
    __syncthreads();
    const int completed = done_count;
    for (int i = 0; i < completed; ++i) {
      unit_epilogue(fused_epilogue_args<T>(a), done[i], shared);
    }
  }
}

// Self-contained tiles (plan.self_contained; kRows, whole batches contiguous): block i reads batch tile i. Launched
// after the previous grid (launch.cuh): back to back, as in a CUDA graph of many small calls, the next call's blocks
// are resident before this one's end (tried first on the fused kernel: kb_old 5.68 -> 5.42 us per graph replay,
// H200; this kernel 2.73, docs/limits.md §55). Its launch bounds are the fused kernel's: without a floor of blocks
// per SM, ptxas (sm_90) kept the 16- and 32-bit kernels within 64 registers and spilled them.
template <typename T>
__global__ void __launch_bounds__(kBlockThreads, kMinBlocksPerSm<T>)
    self_contained_kernel(const __grid_constant__ FusedArgs a) {
  wait_for_previous_grid();
  using A = acc_t<T>;
  // The reads' cross-thread sums (kReduceBytes) first, then the staged W.sum and biases (tile_stage).
  __shared__ __align__(16) unsigned char stage_bytes[kStageBytes];
  __shared__ __align__(16) A unit_sums[kMaxUnitSums];
  const UnitBox box = unit_box(UnitGrid{a.batch, a.channels, a.plan.unit_batches, a.channels, 1}, blockIdx.x);
  read_self_contained_tile<T>(a, box, reinterpret_cast<A*>(stage_bytes), unit_sums,
                              [&] { stage_tile_inputs<T>(a, stage_bytes); });
  finish_self_contained_tile<T>(a, box, unit_sums, tile_stage<A>(stage_bytes, a.channels, a.c_out));
}

template <typename T>
cudaError_t launch_fused_typed(const FusedArgs& a, cudaStream_t stream) {
  if (a.plan.self_contained) {
    return launch_after_previous(self_contained_kernel<T>, static_cast<unsigned>(a.plan.tiles), kBlockThreads, stream,
                                 a);
  }
  const int64_t blocks = a.plan.wsum_blocks + a.plan.read_blocks;
  if (a.layout == XLayout::kRows) {
    fused_kernel<T, XLayout::kRows><<<static_cast<unsigned>(blocks), kBlockThreads, 0, stream>>>(a);
  } else {
    fused_kernel<T, XLayout::kChannelsLast><<<static_cast<unsigned>(blocks), kBlockThreads, 0, stream>>>(a);
  }
  return cudaGetLastError();
}

template <typename T>
int blocks_per_sm_typed(XLayout layout) {
  return layout == XLayout::kRows ? resident_blocks_per_sm(fused_kernel<T, XLayout::kRows>, kBlockThreads)
                                  : resident_blocks_per_sm(fused_kernel<T, XLayout::kChannelsLast>, kBlockThreads);
}

}  // namespace

int fused_blocks_per_sm(ScalarKind kind, XLayout layout) {
  return with_element_type(kind, 1, [&](auto t) { return blocks_per_sm_typed<decltype(t)>(layout); });
}

cudaError_t launch_fused(const FusedArgs& args, cudaStream_t stream) {
  return with_element_type(args.kind, cudaErrorInvalidValue,
                           [&](auto t) { return launch_fused_typed<decltype(t)>(args, stream); });
}

}  // namespace fusedlse
