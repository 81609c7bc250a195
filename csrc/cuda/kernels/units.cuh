// Epilogue units: how [B, C] is cut into units (a tile of batches x a group of channels), the layout of a unit's
// sums in shared memory, and the ticket primitive that counts a unit's arrivals.
#pragma once

#include "load.cuh"
#include "reduce.cuh"

namespace fusedlse {
namespace {

// Adds `count` to a ticket, acquire-release at device scope, and returns the old count. Called after a
// __syncthreads(), the release publishes the writes of the whole block before it (a release is cumulative over what
// the barrier ordered before it); when the add completes a count, the acquire makes the writes that every other
// block published visible to this block after the __syncthreads() that follows. One ordered atomic instead of a
// sequentially consistent __threadfence() in every thread: under a full load of reads, that fence held each
// reading block for about 3 us (H100, globaltimer trace).
__device__ __forceinline__ int ticket_add(int* ticket, int count) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
  int old;
  asm volatile("atom.acq_rel.gpu.global.add.s32 %0, [%1], %2;" : "=r"(old) : "l"(ticket), "r"(count) : "memory");
  return old;
#else
  __threadfence();
  const int old = atomicAdd(ticket, count);
  __threadfence();
  return old;
#endif
}

// How the epilogue cuts [B, C] into units: unit u = (tile, group) covers batches [b0, b0 + nb) and channels
// [c0, c0 + nc).
struct UnitGrid {
  int64_t batch, channels;
  int64_t unit_batches, unit_channels, unit_groups;
};

struct UnitBox {
  int64_t tile, group, b0, nb, c0, nc;
};

__device__ __forceinline__ UnitBox unit_box(const UnitGrid& g, int64_t u) {
  UnitBox box;
  box.tile = u / g.unit_groups;
  box.group = u - box.tile * g.unit_groups;
  box.b0 = box.tile * g.unit_batches;
  box.nb = imin(g.unit_batches, g.batch - box.b0);
  box.c0 = box.group * g.unit_channels;
  box.nc = imin(g.unit_channels, g.channels - box.c0);
  return box;
}

// A unit's sums in shared memory: [channel][batch], the batches padded to a multiple of four (zeros), so that the
// GEMM reads four batches' sums of a channel with one vector load.
__device__ __forceinline__ int64_t unit_sum_stride(int64_t nb) { return (nb + 3) & ~int64_t{3}; }

template <typename A>
__device__ __forceinline__ void clear_sum_padding(const UnitBox& box, A* unit_sums) {
  const int64_t stride = unit_sum_stride(box.nb), pad = stride - box.nb;
  for (int64_t i = threadIdx.x; i < box.nc * pad; i += kBlockThreads) {
    const int64_t k = i / pad;
    unit_sums[k * stride + box.nb + (i - k * pad)] = A(0);
  }
}

}  // namespace
}  // namespace fusedlse
