// After its reads, a block counts its items against the units they belong to; the block that completes a unit
// lists it for the epilogue.
#pragma once

#include "read_planes.cuh"

namespace fusedlse {
namespace {

// Tickets unit `box` waits for: one per item of its rows, plus one per weight-fold piece of its channel group.
__device__ __forceinline__ int unit_expected(const FusedArgs& a, const UnitBox& box) {
  return static_cast<int>(unit_items(a.plan, box) + a.plan.fold_pieces);
}

// `count` more items of unit u are visible; if that completes it, list it in shared `done`.
__device__ __forceinline__ void arrive(const FusedArgs& a, const UnitGrid& grid, int64_t u, int count,
                                       int64_t* done, int* done_count) {
  const int expected = unit_expected(a, unit_box(grid, u));
  if (ticket_add(a.unit_tickets + u, count) + count == expected) {
    done[atomicAdd(done_count, 1)] = u;  // several threads of a weight-fold block may complete units at once
  }
}

// Thread 0, after the block's tile is written: its items, unit by unit (they are consecutive in item order), to
// their tickets.
__device__ __forceinline__ void arrive_tile(const FusedArgs& a, const UnitGrid& grid, int64_t tile, int64_t* done,
                                            int* done_count) {
  const LaunchPlan& p = a.plan;
  if (p.rows_per_warp == 0) {
    arrive(a, grid, item_position(a, tile).unit, 1, done, done_count);
    return;
  }
  int64_t item = tile * p.rows_per_block;
  const int64_t end = imin(item + p.rows_per_block, a.batch * a.channels);
  const ItemPos pos = item_position(a, item);
  int64_t u = pos.unit, unit_end = pos.unit_end;
  while (item < end) {
    const int64_t count = imin(end, unit_end) - item;
    arrive(a, grid, u, static_cast<int>(count), done, done_count);
    item += count;
    ++u;
    unit_end += unit_items(p, unit_box(grid, u));
  }
}

}  // namespace
}  // namespace fusedlse
