// Reading x laid out as contiguous planes (XLayout::kRows): which item a block reads, split tiles of one row,
// whole short rows several per warp, and self-contained tiles of whole batches.
#pragma once

#include "units.cuh"
#include "reduce.cuh"

namespace fusedlse {
namespace {

// Reading items per unit: batches x channel groups x splits.
__device__ __forceinline__ int64_t unit_items(const LaunchPlan& p, const UnitBox& box) {
  return box.nb * ((box.nc + p.group_channels - 1) / p.group_channels) * p.splits;
}

// Where reading item `item` lies. Items are numbered unit by unit: tile, unit group, then within the unit batch,
// channel group and split.
struct ItemPos {
  int64_t b, group, split;  // batch, channel group within the batch (kRows: the channel), piece of the group
  int64_t unit, unit_end;   // its unit, and the number one past the unit's last item
};

__device__ __forceinline__ ItemPos item_position(const FusedArgs& a, int64_t item) {
  const LaunchPlan& p = a.plan;
  if (p.unit_batches == 1 && a.batch * p.groups_per_batch * p.splits <= 0xffffffffll) {
    // One batch per unit, the common case: items are in plain (b, group, split) order, and a reading block's start
    // is on the critical path, so 32-bit divisions only.
    const uint32_t splits = static_cast<uint32_t>(p.splits), per_batch = static_cast<uint32_t>(p.groups_per_batch);
    const uint32_t groups_per_unit = static_cast<uint32_t>((p.unit_channels + p.group_channels - 1) / p.group_channels);
    const uint32_t i = static_cast<uint32_t>(item), row_group = i / splits, b = row_group / per_batch;
    const uint32_t group = row_group - b * per_batch, g = group / groups_per_unit;
    const uint32_t unit_first = (b * per_batch + g * groups_per_unit) * splits;
    ItemPos pos;
    pos.b = b;
    pos.group = group;
    pos.split = i - row_group * splits;
    pos.unit = static_cast<int64_t>(b) * p.unit_groups + g;
    pos.unit_end = unit_first + min(groups_per_unit, per_batch - g * groups_per_unit) * splits;
    return pos;
  }
  const int64_t groups_per_unit = (p.unit_channels + p.group_channels - 1) / p.group_channels;
  const int64_t tile_items = p.unit_batches * p.groups_per_batch * p.splits;  // every tile but the last is full
  const int64_t t = item / tile_items;
  int64_t rest = item - t * tile_items;
  const int64_t nb = imin(p.unit_batches, a.batch - t * p.unit_batches);
  const int64_t full_unit_items = nb * groups_per_unit * p.splits;  // every unit group but the last is full
  const int64_t g = imin(rest / full_unit_items, p.unit_groups - 1);
  rest -= g * full_unit_items;
  const int64_t ng = imin(groups_per_unit, p.groups_per_batch - g * groups_per_unit);
  const int64_t b_local = rest / (ng * p.splits);
  rest -= b_local * ng * p.splits;
  const int64_t g_local = rest / p.splits;
  ItemPos pos;
  pos.b = t * p.unit_batches + b_local;
  pos.group = g * groups_per_unit + g_local;
  pos.split = rest - g_local * p.splits;
  pos.unit = t * p.unit_groups + g;
  pos.unit_end = t * tile_items + g * full_unit_items + nb * ng * p.splits;
  return pos;
}

// Whole-row tiles walk rows in item order: (b, c) and the bounds of its unit. 32 bits suffice (plan_launch checks
// B and C against 2^31); it is kept small because the warp's loads need the registers.
struct RowCursor {
  uint32_t b, c, c_begin, c_end, b_end;
  int64_t unit;
};

__device__ __forceinline__ void cursor_enter(const UnitGrid& grid, RowCursor& r, int64_t unit) {
  const UnitBox box = unit_box(grid, unit);
  r.unit = unit;
  r.c_begin = static_cast<uint32_t>(box.c0);
  r.c_end = static_cast<uint32_t>(box.c0 + box.nc);
  r.b_end = static_cast<uint32_t>(box.b0 + box.nb);
}

__device__ __forceinline__ void cursor_next(const UnitGrid& grid, RowCursor& r) {
  if (++r.c < r.c_end) return;
  r.c = r.c_begin;
  if (++r.b < r.b_end) return;
  cursor_enter(grid, r, r.unit + 1);
  r.b = static_cast<uint32_t>(unit_box(grid, r.unit).b0);
  r.c = r.c_begin;
}

// Split tile of a row: positions [split * chunk, ...) of one row, an eighth per warp; one partial.
template <typename T>
__device__ __forceinline__ void read_row_item(const FusedArgs& a, int64_t item, acc_t<T>* reduce) {
  using A = acc_t<T>;
  constexpr int64_t kGrain = 16 / sizeof(T);  // pieces start 16 bytes apart from the row's start
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const ItemPos pos = item_position(a, item);
  const int64_t row = pos.b * a.channels + pos.group, split = pos.split;
  const int64_t begin = split * a.plan.chunk, end = imin(begin + a.plan.chunk, a.plane);
  const int64_t piece = ((end - begin + kWarpsPerBlock - 1) / kWarpsPerBlock + kGrain - 1) / kGrain * kGrain;
  const int64_t p0 = imin(begin + warp * piece, end), p1 = imin(p0 + piece, end);
  const T* x = static_cast<const T*>(a.x) + pos.b * a.stride_b + pos.group * a.stride_c;
  const A s = with_evict_first(a.plan.evict_first, [&](auto evict_first) {
    return warp_chunk_sum<T, decltype(evict_first)::value>(x + p0, p1 - p0, lane);
  });
  if (lane == 0) reduce[warp] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    A total = A(0);
#pragma unroll
    for (int w = 0; w < kWarpsPerBlock; ++w) total += reduce[w];
    static_cast<A*>(a.partials)[row * a.plan.splits + split] = total;
  }
}

// Whole-row tile: rows_per_warp rows per warp, their loads interleaved; the sums are final.
template <typename T>
__device__ __forceinline__ void read_whole_rows(const FusedArgs& a, const UnitGrid& grid, int64_t first_row,
                                                int64_t end_row) {
  using A = acc_t<T>;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t k = a.plan.rows_per_warp;
  const int64_t warp_first = first_row + warp * k, warp_end = imin(warp_first + k, end_row);
  if (warp_first >= warp_end) return;
  const ItemPos start = item_position(a, warp_first);
  RowCursor cursor;
  cursor_enter(grid, cursor, start.unit);
  cursor.b = static_cast<uint32_t>(start.b);
  cursor.c = static_cast<uint32_t>(start.group);
  for (int64_t item = warp_first; item < warp_end; item += kRowsAtOnce) {
    const T* ptrs[kRowsAtOnce];
    int64_t my_row = 0;  // lane r keeps the index of the group's row r, to write its sum
#pragma unroll
    for (int r = 0; r < kRowsAtOnce; ++r) {
      ptrs[r] = nullptr;
      if (item + r < warp_end) {
        ptrs[r] = static_cast<const T*>(a.x) + cursor.b * a.stride_b + cursor.c * a.stride_c;
        if (lane == r) my_row = static_cast<int64_t>(cursor.b) * a.channels + cursor.c;
        cursor_next(grid, cursor);
      }
    }
    A s[kRowsAtOnce];
    // Evict-first whatever plan.evict_first says: a second copy of this loop spilled the kernel's registers.
    warp_rows_sum<T, kRowsAtOnce, true>(ptrs, a.plane, lane, s);
#pragma unroll
    for (int r = 0; r < kRowsAtOnce; ++r)
      if (lane == r && ptrs[r] != nullptr) static_cast<A*>(a.partials)[my_row] = s[r];
  }
}

// Self-contained tile: the batches of `box`, contiguous, 16-byte aligned and a whole number of vectors per row
// (plan_launch checks), read with all of the block's loads in flight at once; `while_loading()` runs (every thread)
// while they fly. Each thread sums its vectors into `reduce` (one slot per vector); then a warp per row adds the
// row's slots in order. The sums go to shared memory for the epilogue, and to `sums`.
template <typename T, typename WhileLoading>
__device__ __forceinline__ void read_self_contained_tile(const FusedArgs& a, const UnitBox& box, acc_t<T>* reduce,
                                                         acc_t<T>* unit_sums, WhileLoading&& while_loading) {
  using A = acc_t<T>;
  constexpr int kVec = 16 / sizeof(T);
  const int64_t rows = box.nb * a.channels, row_vectors = a.plane / kVec, vectors = rows * row_vectors;
  const uint4* x = reinterpret_cast<const uint4*>(static_cast<const T*>(a.x) + box.b0 * a.stride_b);
  uint4 v[kSelfContainedLoads];
  // Evict-first: self-contained tiles are small x (plan_launch), which evict_first_loads loads so anyway.
#pragma unroll
  for (int j = 0; j < kSelfContainedLoads; ++j)
    if (threadIdx.x + j * kBlockThreads < vectors) v[j] = load_once<true>(x + threadIdx.x + j * kBlockThreads);
  while_loading();
#pragma unroll
  for (int j = 0; j < kSelfContainedLoads; ++j)
    if (threadIdx.x + j * kBlockThreads < vectors) reduce[threadIdx.x + j * kBlockThreads] = vec_sum<T>(v[j]);
  clear_sum_padding(box, unit_sums);
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t stride = unit_sum_stride(box.nb);
  for (int64_t r = warp; r < rows; r += kWarpsPerBlock) {
    A s = A(0);
    for (int64_t i = lane; i < row_vectors; i += 32) s += reduce[r * row_vectors + i];
    s = warp_sum(s);
    if (lane == 0) {
      const int64_t b = r / a.channels;
      unit_sums[(r - b * a.channels) * stride + b] = s;
      static_cast<A*>(a.sums)[box.b0 * a.channels + r] = s;
    }
  }
  __syncthreads();
}

}  // namespace
}  // namespace fusedlse
