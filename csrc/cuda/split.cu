// The split strategy's kernels (../plan.h): a reader of planes in any layout, in place (a group of lanes per plane or
// piece of one, a thread per few adjacent tiny planes, or a block per tile of them staged in shared memory), a reader
// of channels-last x by rows of channels, and the biases + logsumexp after cuBLAS's GEMM.
// Only CUDA headers are included: see kernels.h. The kernels' stages are in kernels/ (read_*, bias_lse).

#include "kernels.h"
#include "kernels/dtype.cuh"
#include "kernels/load.cuh"
#include "kernels/reduce.cuh"
#include "kernels/read_channel_rows.cuh"
#include "kernels/read_plane_lanes.cuh"
#include "kernels/read_plane_runs.cuh"
#include "kernels/bias_lse.cuh"
#include "launch.cuh"
#include "once_per_key.h"

#include <cuda_pipeline_primitives.h>

#include <algorithm>

namespace fusedlse {
namespace {

// Groups of kLanes lanes take items (a piece of a plane) in order: neighbouring groups take neighbouring planes,
// whose bytes share cache lines in every layout, so each line is fetched from DRAM once. With pieces_in_block, a
// block's turn of kGroups items holds whole planes (pieces divides kGroups), and the group of a plane's first piece
// adds the plane's pieces in order.
template <typename T, int kLanes, Walk kWalk>
__global__ void __launch_bounds__(kSplitThreads) plane_lanes_kernel(PlaneLanesArgs a) {
  using A = acc_t<T>;
  start_after_previous_grid(a.beside_previous);
  constexpr int kGroups = kSplitThreads / kLanes;
  const T* x = static_cast<const T*>(a.x);
  A* out = static_cast<A*>(a.out);
  const int lane = threadIdx.x % kLanes;
  const int64_t items = a.batch * a.channels * a.pieces;
  // kVectors: a plane's whole vectors; kInnerVectors: the most a plane holds (one fewer where it starts inside one);
  // kMaskedVectors: per plane.
  constexpr bool kVectorWalk = kWalk == Walk::kVectors || kWalk == Walk::kInnerVectors;
  const int64_t units = kVectorWalk ? a.width / a.vec : a.height * a.width;
  const RowStep step = kWalk == Walk::kRows ? row_step<kLanes>(a) : RowStep{};
  // kMaskedVectors: a plane's elements from its first to its last, in 32-bit (PlaneLanesArgs).
  const int32_t span = static_cast<int32_t>((a.height - 1) * a.stride_h + a.width);
  __shared__ A piece_sums[kGroups];  // pieces_in_block: this turn's items' sums
  const int group = threadIdx.x / kLanes;
  // Every lane of a group runs the same number of trips, so the shuffles see the whole warp; every thread of a block
  // the same number of turns, so the block's barriers see it whole.
  for (int64_t first = int64_t{blockIdx.x} * kGroups; first < items; first += int64_t{gridDim.x} * kGroups) {
    const int64_t item = first + group;
    A total = A(0);
    if (item < items) {
      // No division where there is nothing to divide by (one piece; batches and channels evenly spaced, which the
      // host passes as one channel): a 64-bit division costs more than the loads of a tiny plane.
      const int64_t plane_index = a.pieces == 1 ? item : item / a.pieces;
      const int64_t piece = item - plane_index * a.pieces;
      const int64_t b = a.channels == 1 ? plane_index : plane_index / a.channels, c = plane_index - b * a.channels;
      const T* plane = x + b * a.stride_b + c * a.stride_c;
      const int64_t begin = piece * a.piece_units;
      if constexpr (kWalk == Walk::kMaskedVectors) {
        constexpr int32_t kVec = 16 / sizeof(T);
        const uintptr_t address = reinterpret_cast<uintptr_t>(plane);
        const int32_t misalign = static_cast<int32_t>((address & 15) / sizeof(T));
        const int32_t vectors = (misalign + span + kVec - 1) / kVec;  // this plane's; a.piece_units counts the most
        total = with_evict_first(a.evict_first, [&](auto evict_first) {
          return masked_lane_share<T, kLanes, decltype(evict_first)::value>(
              reinterpret_cast<const uint4*>(address - (address & 15)), misalign, span,
              static_cast<int32_t>(a.stride_h), static_cast<int32_t>(a.width), static_cast<int32_t>(begin + lane),
              static_cast<int32_t>(imin(vectors, begin + a.piece_units)));
        });
      } else if constexpr (kWalk == Walk::kInnerVectors) {
        // The plane's elements before its first aligned 16-byte vector, its whole vectors from there (lane_share's
        // vector walk), and the elements after them: the last piece adds those around the vectors one by one.
        constexpr int32_t kVec = 16 / sizeof(T);
        const int32_t head = static_cast<int32_t>(((16 - (reinterpret_cast<uintptr_t>(plane) & 15)) & 15) / sizeof(T));
        const int64_t plane_units = (a.width - head) / kVec;
        total = with_evict_first(a.evict_first, [&](auto evict_first) {
          return lane_share<T, kLanes, Walk::kVectors, decltype(evict_first)::value>(
              a, step, plane + head, static_cast<int32_t>(begin + lane),
              static_cast<int32_t>(imin(plane_units, begin + a.piece_units)));
        });
        if (piece == a.pieces - 1) {
          for (int32_t e = lane; e < head; e += kLanes) total += to_acc(plane[e]);
          for (int64_t e = head + plane_units * kVec + lane; e < a.width; e += kLanes) total += to_acc(plane[e]);
        }
      } else {
        total = with_evict_first(a.evict_first, [&](auto evict_first) {
          return lane_share<T, kLanes, kWalk, decltype(evict_first)::value>(
              a, step, plane, static_cast<int32_t>(begin + lane),
              static_cast<int32_t>(imin(units, begin + a.piece_units)));
        });
      }
      if (kWalk == Walk::kVectors && piece == a.pieces - 1) {
        for (int64_t e = units * a.vec + lane; e < a.width; e += kLanes) total += to_acc(plane[e]);
      }
    }
    total = group_sum<A, kLanes>(total);
    if (!a.pieces_in_block) {
      if (lane == 0 && item < items) out[item] = total;
      continue;
    }
    if (lane == 0) piece_sums[group] = total;
    __syncthreads();
    if (lane == 0 && item < items && item % a.pieces == 0) {  // the plane's first piece
      A plane_total = piece_sums[group];
      for (int p = 1; p < a.pieces; ++p) plane_total += piece_sums[group + p];
      out[item / a.pieces] = plane_total;
    }
    __syncthreads();  // the sums are read before the next turn writes its own
  }
  end_after_previous_grid(a.beside_previous);
}

// A thread per item (PlaneRunsArgs), a block's items in a row: neighbouring threads read neighbouring bytes, and the
// block's sums, staged in shared memory, are a contiguous part of `out`, written by the whole block in order.
// (Stored by each thread, a warp's stores hit a sector per lane: the sums' writes, not x's reads, took the time.)
// kPlane 0: planes of any size (run_item_sums); 1, 2, 4 or 8: planes of kPlane elements that never straddle a
// 16-byte vector, an item being kPlaneRunsItemVectors aligned vectors of a run (vector_plane_sums).
template <typename T, int kPlane>
__global__ void __launch_bounds__(kSplitThreads) plane_runs_kernel(PlaneRunsArgs a) {
  using A = acc_t<T>;
  start_after_previous_grid(a.beside_previous);
  constexpr int kPerVector = kPlane > 0 ? 16 / sizeof(T) / kPlane : 0;  // planes per vector (kPlane > 0)
  extern __shared__ __align__(16) unsigned char shared[];
  A* staged = reinterpret_cast<A*>(shared);  // [kSplitThreads x item_planes] sums at staged_slot(plane - first)
  __shared__ int64_t block_planes[2];        // the block's first plane, and one past its last
  const T* x = static_cast<const T*>(a.x);
  A* out = static_cast<A*>(a.out);
  const int64_t items = a.runs * a.run_items, all_planes = a.runs * a.run_planes;
  const int64_t threads = int64_t{gridDim.x} * blockDim.x;
  // The thread's item, stepped by the grid's threads.
  const RunStepper stepper(a.run_items, threads);
  RunPlace here = stepper.at(int64_t{blockIdx.x} * blockDim.x + threadIdx.x);
  const int32_t plane = static_cast<int32_t>(a.plane);
  // Every thread runs the same trips, so the syncs see the whole block.
  for (int64_t block_first = int64_t{blockIdx.x} * blockDim.x; block_first < items; block_first += threads) {
    const int64_t run = here.run, item = here.item;
    const T* run_x = x + run * a.stride_run;
    // The item's planes [first, first + planes) of its run, clipped to the run (an item past its run's last plane
    // is empty, at the place in `out` where the next run begins).
    int64_t unclipped = item * a.item_planes;
    if constexpr (kPlane > 0) {
      // Items count from the first slot of the run's first aligned vector, which may hold slots before the run's
      // first plane (before x, or another run's planes): those come first, outside [0, run_planes).
      unclipped -= ((reinterpret_cast<uintptr_t>(run_x) & 15) / sizeof(T)) / kPlane;
    }
    const int64_t first = imin(imax(unclipped, 0), a.run_planes);
    const int32_t planes =
        run < a.runs ? static_cast<int32_t>(imin(unclipped + a.item_planes, a.run_planes) - first) : 0;
    const int64_t out_first = run * a.run_planes + first;  // this item's first plane in `out`
    if (threadIdx.x == 0) block_planes[0] = out_first;
    if (threadIdx.x == blockDim.x - 1) block_planes[1] = run < a.runs ? out_first + planes : all_planes;
    __syncthreads();
    const int32_t offset = static_cast<int32_t>(out_first - block_planes[0]);
    if (planes > 0) {
      if constexpr (kPlane == 0) {
        with_evict_first(a.evict_first, [&](auto evict_first) {
          run_item_sums<T, decltype(evict_first)::value>(
              run_x + first * a.plane, planes, plane, [&](int32_t k, A sum) { staged[staged_slot(offset + k)] = sum; });
        });
      } else {
        const uintptr_t address = reinterpret_cast<uintptr_t>(run_x);
        const uint4* vectors = reinterpret_cast<const uint4*>(address - (address & 15)) + item * kPlaneRunsItemVectors;
        // The item's slots q = u * kPerVector + s hold planes of the run for lo <= q < hi; slot q's sum is staged at
        // offset + q - lo. Most items lie inside their run: no check.
        const int32_t lo = static_cast<int32_t>(first - unclipped), hi = lo + planes;
        uint4 v[kPlaneRunsItemVectors];
        if (lo == 0 && planes == a.item_planes) {
#pragma unroll
          for (int u = 0; u < kPlaneRunsItemVectors; ++u) v[u] = __ldg(vectors + u);
#pragma unroll
          for (int u = 0; u < kPlaneRunsItemVectors; ++u) {
            vector_plane_sums<T, kPlane>(
                v[u], [](int) { return true; },
                [&](int s, A sum) { staged[staged_slot(offset + u * kPerVector + s)] = sum; });
          }
        } else {
          // A vector is loaded where it holds a plane of the run.
#pragma unroll
          for (int u = 0; u < kPlaneRunsItemVectors; ++u) {
            if ((u + 1) * kPerVector > lo && u * kPerVector < hi) v[u] = __ldg(vectors + u);
          }
#pragma unroll
          for (int u = 0; u < kPlaneRunsItemVectors; ++u) {
            if (!((u + 1) * kPerVector > lo && u * kPerVector < hi)) continue;
            vector_plane_sums<T, kPlane>(
                v[u],
                [&](int s) {
                  const int32_t q = u * kPerVector + s;
                  return q >= lo && q < hi;
                },
                [&](int s, A sum) { staged[staged_slot(offset + u * kPerVector + s - lo)] = sum; });
          }
        }
      }
    }
    __syncthreads();
    const int32_t count = static_cast<int32_t>(block_planes[1] - block_planes[0]);
    for (int32_t i = threadIdx.x; i < count; i += blockDim.x) out[block_planes[0] + i] = staged[staged_slot(i)];
    __syncthreads();  // the next trip rewrites `staged` and `block_planes`
    here = stepper.next(here);
  }
  end_after_previous_grid(a.beside_previous);
}

// The run walk's kernel for a: a plane size of its own where planes tile the vectors (a.vector_plane).
template <typename T> auto plane_runs_kernel_for(const PlaneRunsArgs& a) {
  switch (a.vector_plane) {
    case 1: return plane_runs_kernel<T, 1>;
    case 2: return plane_runs_kernel<T, 2 * sizeof(T) <= 16 ? 2 : 0>;
    case 4: return plane_runs_kernel<T, 4 * sizeof(T) <= 16 ? 4 : 0>;
    case 8: return plane_runs_kernel<T, 8 * sizeof(T) <= 16 ? 8 : 0>;
  }
  return plane_runs_kernel<T, 0>;
}

// The staged walk (PlaneRunsArgs::staged): tile k of run r is its planes [k, k + 1) x item_planes (fewer at the
// run's end), whose span of aligned 16-byte vectors the block copies into shared memory (neighbouring threads copy
// neighbouring vectors: each warp's copies are 512 contiguous bytes), the next tile's copies in flight while the
// threads add this one's planes there, planes t, t + kSplitThreads, ... for thread t. The vectors may reach up to 15
// bytes outside x (plane_runs_of allows for it); their bytes outside the tile are never added.
template <typename T>
__global__ void __launch_bounds__(kSplitThreads) plane_tiles_kernel(PlaneRunsArgs a) {
  using A = acc_t<T>;
  start_after_previous_grid(a.beside_previous);
  extern __shared__ __align__(16) unsigned char shared[];
  const int32_t plane = static_cast<int32_t>(a.plane), tile_planes = static_cast<int32_t>(a.item_planes);
  const int32_t buffer_vectors = plane_tile_vectors(tile_planes, plane, sizeof(T));
  uint4* buffers = reinterpret_cast<uint4*>(shared);  // [2][buffer_vectors]: this tile's and the next one's
  const T* x = static_cast<const T*>(a.x);
  A* out = static_cast<A*>(a.out);
  // The block's tile (an item of its run), stepped by the grid's blocks.
  const RunStepper stepper(a.run_items, gridDim.x);
  // The tile's first element and its planes.
  const auto tile_at = [&](RunPlace p, int32_t& planes) {
    const int64_t first_plane = p.item * tile_planes;
    planes = static_cast<int32_t>(imin(tile_planes, a.run_planes - first_plane));
    return x + p.run * a.stride_run + first_plane * a.plane;
  };
  const auto copy_tile = [&](RunPlace p, uint4* buffer) {
    int32_t planes;
    const uintptr_t address = reinterpret_cast<uintptr_t>(tile_at(p, planes));
    const uint4* from = reinterpret_cast<const uint4*>(address - (address & 15));
    const int32_t vectors = static_cast<int32_t>(((address & 15) + planes * plane * sizeof(T) + 15) / 16);
    for (int32_t v = threadIdx.x; v < vectors; v += kSplitThreads) __pipeline_memcpy_async(buffer + v, from + v, 16);
  };
  // Planes of an odd number of elements: a warp's loads of element j of neighbouring planes fall on distinct banks
  // as they are. Even ones start each thread at its own element (threadIdx.x mod plane, wrapping around), which
  // spreads them; on odd planes that start put lanes 2^k - 1 elements apart (planes of 3, 7, 15, 31) on a few banks
  // (float16 planes of 31: 2x slower than the run walk, H200). The same order every run: bitwise reproducible.
  const int32_t rotation = plane % 2 == 1 ? 0 : static_cast<int32_t>(threadIdx.x % plane);
  RunPlace here = stepper.at(blockIdx.x);
  int buf = 0;
  if (here.run < a.runs) copy_tile(here, buffers);
  __pipeline_commit();
  while (here.run < a.runs) {
    const RunPlace next = stepper.next(here);
    if (next.run < a.runs) copy_tile(next, buffers + (buf ^ 1) * buffer_vectors);
    __pipeline_commit();
    __pipeline_wait_prior(1);  // this tile's copies (the next tile's may still be in flight)
    __syncthreads();
    int32_t planes;
    const T* first = tile_at(here, planes);
    const T* staged = reinterpret_cast<const T*>(buffers + buf * buffer_vectors) +
                      (reinterpret_cast<uintptr_t>(first) & 15) / sizeof(T);
    A* tile_out = out + here.run * a.run_planes + here.item * tile_planes;
    for (int32_t p = threadIdx.x; p < planes; p += kSplitThreads) {
      const T* elements = staged + p * plane;
      A sum = A(0);
      int32_t e = rotation;
      for (int32_t j = 0; j < plane; ++j) {
        sum += to_acc(elements[e]);
        e = e + 1 == plane ? 0 : e + 1;
      }
      tile_out[p] = sum;
    }
    __syncthreads();  // every thread is done with this buffer before the next trip's copies refill it
    buf ^= 1;
    here = next;
  }
  end_after_previous_grid(a.beside_previous);
}

// A block per item (a batch's chunk of pixels) at a time; kWide: more channels than threads (ChannelRowsArgs). W.sum
// first, where asked.
template <typename T, bool kWide>
__global__ void __launch_bounds__(kSplitThreads) channel_rows_kernel(ChannelRowsArgs a) {
  using A = acc_t<T>;
  start_after_previous_grid(a.beside_previous);  // beside the W.sum launch: then no fold (read_channel_rows)
  fold_weight<T>(a.fold);
  __shared__ A column[kSplitThreads];  // each thread's sum down its rows, added per channel at the chunk's end
  const T* x = static_cast<const T*>(a.x);
  A* out = static_cast<A*>(a.out);
  const int64_t items = a.batch * a.chunks;
  const int channels = static_cast<int>(a.channels), rows = a.rows_per_step;
  const int t = threadIdx.x;
  // Narrow: thread t reads channel t % C of pixel t / C of each step (threads past rows x C read nothing). Wide:
  // channels t, t + kSplitThreads, ..., as many as lie below C.
  const int row = kWide ? 0 : t / channels, channel = kWide ? t : t - row * channels;
  const int wide_channels = kWide ? (channels - t + kSplitThreads - 1) / kSplitThreads : 0;
  // Every thread runs the same items, so the syncs see the whole block.
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    const int64_t b = a.chunks == 1 ? item : item / a.chunks, chunk = item - b * a.chunks;
    const int64_t begin = chunk * a.chunk_pixels, end = imin(a.pixels, begin + a.chunk_pixels);
    const T* batch_x = x + b * a.stride_b;
    A* batch_out = out + b * a.channels * a.chunks + chunk;  // channel c's sum at c * chunks
    if constexpr (kWide) {
      A acc[kChannelRowsWideLoads];
      with_evict_first(a.evict_first, [&](auto evict_first) {
        wide_columns_share<T, kChannelRowsWideLoads, decltype(evict_first)::value>(
            batch_x + begin * a.stride_p + t, a.stride_p, end - begin, kSplitThreads, wide_channels, acc);
      });
#pragma unroll
      for (int j = 0; j < kChannelRowsWideLoads; ++j) {
        if (j >= wide_channels) break;
        batch_out[static_cast<int64_t>(t + j * kSplitThreads) * a.chunks] = acc[j];
      }
    } else {
      A acc = A(0);
      if (row < rows) {
        const int64_t first = begin + row;
        const int64_t count = first < end ? (end - first + rows - 1) / rows : 0;
        acc = with_evict_first(a.evict_first, [&](auto evict_first) {
          return column_share<T, decltype(evict_first)::value>(batch_x + first * a.stride_p + channel,
                                                               rows * a.stride_p, count);
        });
      }
      column[t] = acc;
      __syncthreads();
      if (t < channels) {
        A total = A(0);
        for (int r = 0; r < rows; ++r) total += column[r * channels + t];  // in row order: reproducible
        batch_out[static_cast<int64_t>(t) * a.chunks] = total;
      }
      __syncthreads();  // the next item rewrites `column`
    }
  }
  end_after_previous_grid(a.beside_previous);
}

// The channel-rows reader's vector walk (ChannelRowsArgs::period_vectors), a block per item at a time: an item's
// elements (its pixels' channels, one run in memory) by 16-byte loads whatever C and x's alignment. Vector k of a
// batch (counted from its first 16-byte boundary) and vector k + Q, Q = period_vectors, hold the same channels, so
// slot s (copy s / Q, position j = s % Q of the period) adds the item's vectors first + j + (copy + copies m) Q into
// one accumulator per element of a vector, and channel c's sum is the accumulators that hold it, in a fixed order,
// plus the item's elements outside its whole vectors (fewer than a vector's at each end). The copies keep threads
// busy where a period has fewer vectors than the block has threads; neighbouring slots read neighbouring vectors.
template <typename T>
__global__ void __launch_bounds__(kSplitThreads) channel_vectors_kernel(ChannelRowsArgs a) {
  using A = acc_t<T>;
  constexpr int kVec = 16 / sizeof(T);
  start_after_previous_grid(a.beside_previous);  // beside the W.sum launch: then no fold (read_channel_rows)
  fold_weight<T>(a.fold);
  // [copies][Q * kVec]: a copy's entry e holds channel (c0 + e) % C, c0 the channel of the item's first vector.
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  A* slot_sums = reinterpret_cast<A*>(shared_bytes);
  __shared__ A end_values[2 * kVec];  // the item's elements outside its vectors, and their channels
  __shared__ int end_channels[2 * kVec];
  const T* x = static_cast<const T*>(a.x);
  A* out = static_cast<A*>(a.out);
  const int64_t channels = a.channels, period = a.period_vectors;
  const int64_t slots = period * a.copies, copy_entries = period * kVec;  // copy_entries: a multiple of C
  const int64_t items = a.batch * a.chunks;
  const int t = threadIdx.x;
  // Every thread runs the same items, so the syncs see the whole block.
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    const int64_t b = a.chunks == 1 ? item : item / a.chunks, chunk = item - b * a.chunks;
    const T* batch_x = x + b * a.stride_b;
    // The item's elements [first, end) of its batch, and its whole vectors [k_first, k_end) from the batch's first
    // 16-byte boundary, `head` elements in: elements [from, to).
    const int64_t first = chunk * a.chunk_pixels * channels;
    const int64_t end = imin(a.pixels, (chunk + 1) * a.chunk_pixels) * channels;
    const int64_t head = ((16 - (reinterpret_cast<uintptr_t>(batch_x) & 15)) & 15) / sizeof(T);
    const int64_t k_first = first <= head ? 0 : (first - head + kVec - 1) / kVec;
    const int64_t k_end = imax(k_first, end < head ? 0 : (end - head) / kVec);
    const int64_t from = head + k_first * kVec, to = head + k_end * kVec;
    // Outside the vectors: [first, first + before) and [after_first, end), all of [first, end) where there are none
    // (fewer than 2 kVec elements then).
    const bool any_vectors = k_end > k_first;
    const int before = static_cast<int>((any_vectors ? from : end) - first);
    const int64_t after_first = any_vectors ? to : end;
    const int ends = before + static_cast<int>(end - after_first);
    if (t < ends) {
      const int64_t e = t < before ? first + t : after_first + (t - before);
      end_values[t] = to_acc(batch_x[e]);
      end_channels[t] = static_cast<int>(e % channels);
    }
    const uint4* vectors = reinterpret_cast<const uint4*>(batch_x + head);
    for (int64_t slot = t; slot < slots; slot += kSplitThreads) {
      const int64_t copy = slot / period, position = slot - copy * period;
      A acc[kVec];
#pragma unroll
      for (int e = 0; e < kVec; ++e) acc[e] = A(0);
      with_evict_first(a.evict_first, [&](auto evict_first) {
        slot_share<T, decltype(evict_first)::value>(vectors, k_first + position + copy * period, k_end, slots, acc);
      });
#pragma unroll
      for (int e = 0; e < kVec; ++e) slot_sums[slot * kVec + e] = acc[e];
    }
    __syncthreads();
    const int64_t c0 = from % channels;
    for (int64_t c = t; c < channels; c += kSplitThreads) {
      const int64_t r = c >= c0 ? c - c0 : c - c0 + channels;  // the first entry of a copy that holds channel c
      A total = A(0);
      for (int64_t copy = 0; copy < a.copies; ++copy) {
        for (int64_t e = r; e < copy_entries; e += channels) total += slot_sums[copy * copy_entries + e];
      }
      for (int i = 0; i < ends; ++i) {
        if (end_channels[i] == c) total += end_values[i];
      }
      out[(b * channels + c) * a.chunks + chunk] = total;
    }
    __syncthreads();  // the next item rewrites slot_sums and the ends
  }
  end_after_previous_grid(a.beside_previous);
}

// The channel-rows reader's pixel-vector walk (ChannelRowsArgs::pixel_vectors): each pixel whole 16-byte vectors from a
// 16-byte boundary (plan::pixel_vectors_walk): small planes, where a block per item and its syncs cost more than the
// item's loads (docs/limits.md sections 71 and 72), and float64 planes of many channels, which the scalar walk and
// torch's reduction read at 0.6-0.8 of the flat read (section 74). A thread per (batch, chunk of pixels, vector
// position of a pixel), neighbouring threads on neighbouring vectors: that vector of each of the chunk's pixels,
// slot_share's loads in flight, summed in registers in pixel order (the same sums every run). One chunk: its
// channels' sums stored straight out as 16-byte vectors, no shared memory, no sync; several: each channel's chunk
// sum at out [B, C, chunks], which read_channel_rows then adds in chunk order (none for one). kChunked:
// ChannelRowsArgs::pixel_chunks, a kernel of its own (the chunks' index math took the one-chunk walk from 64 to 76
// registers, sm_90).
template <typename T, bool kChunked>
__global__ void __launch_bounds__(kSplitThreads) pixel_vectors_kernel(ChannelRowsArgs a) {
  using A = acc_t<T>;
  constexpr int kVec = 16 / sizeof(T);
  constexpr int kOutVectors = kVec * static_cast<int>(sizeof(A)) / 16;
  static_assert(kOutVectors >= 1 && 16 % sizeof(A) == 0, "whole 16-byte vectors of sums");
  start_after_previous_grid(a.beside_previous);  // beside the W.sum launch: then no fold (read_channel_rows)
  fold_weight<T>(a.fold);
  const int64_t row_vectors = a.channels / kVec, batch_vectors = a.stride_b / kVec;
  const int64_t items = a.batch * a.chunks * row_vectors;
  const uint4* x = static_cast<const uint4*>(a.x);
  A* out = static_cast<A*>(a.out);
  for (int64_t item = int64_t{blockIdx.x} * kSplitThreads + threadIdx.x; item < items;
       item += int64_t{gridDim.x} * kSplitThreads) {
    int64_t b, v, chunk = 0;
    if constexpr (kChunked) {
      // 32-bit divisions (items < 2^31, read_channel_rows): 64-bit ones spilled on sm_89 (64 registers there)
      const auto item32 = static_cast<uint32_t>(item), row_vectors32 = static_cast<uint32_t>(row_vectors);
      const uint32_t piece = item32 / row_vectors32, chunks32 = static_cast<uint32_t>(a.chunks);  // b x chunks + chunk
      v = item32 - piece * row_vectors32;
      b = piece / chunks32;
      chunk = piece - static_cast<uint32_t>(b) * chunks32;
    } else {
      b = item / row_vectors;
      v = item - b * row_vectors;
    }
    const int64_t begin = chunk * a.chunk_pixels, end = kChunked ? imin(a.pixels, begin + a.chunk_pixels) : a.pixels;
    A acc[kVec];
#pragma unroll
    for (int e = 0; e < kVec; ++e) acc[e] = A(0);
    with_evict_first(a.evict_first, [&](auto evict_first) {
      slot_share<T, decltype(evict_first)::value>(x + b * batch_vectors, begin * row_vectors + v, end * row_vectors,
                                                  row_vectors, acc);
    });
    if constexpr (kChunked) {
      A* to = out + (b * a.channels + v * kVec) * a.chunks + chunk;
#pragma unroll
      for (int e = 0; e < kVec; ++e) to[e * a.chunks] = acc[e];
      continue;
    }
    // 16-byte aligned: C a whole number of x's vectors, so of the sums' too, and the allocation aligned.
    uint4* to = reinterpret_cast<uint4*>(out + b * a.channels + v * kVec);
#pragma unroll
    for (int i = 0; i < kOutVectors; ++i) {
      uint4 packed;
      A* lanes = reinterpret_cast<A*>(&packed);
#pragma unroll
      for (int e = 0; e < 16 / static_cast<int>(sizeof(A)); ++e) lanes[e] = acc[i * (16 / sizeof(A)) + e];
      to[i] = packed;
    }
  }
  end_after_previous_grid(a.beside_previous);
}

template <typename T> auto channel_rows_kernel_for(const ChannelRowsArgs& a) {
  if (a.pixel_vectors) return a.pixel_chunks ? pixel_vectors_kernel<T, true> : pixel_vectors_kernel<T, false>;
  if (a.period_vectors > 0) return channel_vectors_kernel<T>;
  return a.channels > kSplitThreads ? channel_rows_kernel<T, true> : channel_rows_kernel<T, false>;
}

// The kernel that walks a's planes with kLanes lanes each.
template <typename T, int kLanes> auto plane_lanes_kernel_for(const PlaneLanesArgs& a) {
  if (a.vec > 1) {
    if (a.height > 1) return plane_lanes_kernel<T, kLanes, Walk::kMaskedVectors>;
    return a.inner_vectors ? plane_lanes_kernel<T, kLanes, Walk::kInnerVectors>
                           : plane_lanes_kernel<T, kLanes, Walk::kVectors>;
  }
  return a.height == 1 ? plane_lanes_kernel<T, kLanes, Walk::kOneRow> : plane_lanes_kernel<T, kLanes, Walk::kRows>;
}

// f(the kernel for a), or `fallback` for a lane count it has none for.
template <typename R, typename F> R with_plane_lanes_kernel(const PlaneLanesArgs& a, R fallback, F&& f) {
  return with_element_type(a.kind, fallback, [&](auto element) {
    using T = decltype(element);
    switch (a.lanes) {
      case 1: return f(plane_lanes_kernel_for<T, 1>(a));
      case 4: return f(plane_lanes_kernel_for<T, 4>(a));
      case 8: return f(plane_lanes_kernel_for<T, 8>(a));
      case 32: return f(plane_lanes_kernel_for<T, 32>(a));
    }
    return fallback;
  });
}

// Dynamic shared memory of a bias_lse block: the biases' sum staged, or none.
template <typename A> size_t bias_lse_shared_bytes(int64_t c_out) {
  const size_t bytes = static_cast<size_t>(c_out) * sizeof(A);
  return bytes <= static_cast<size_t>(kBiasLseMaxStagedBytes) ? bytes : 0;
}

// `kLanes` lanes per row (a power of two, at most 32): as many as give each about kBiasLseValuesPerLane logits of the
// row, so a warp takes 32 / kLanes rows.
template <typename T, int kLanes, bool kStaged, bool kSplit = false>
__global__ void __launch_bounds__(kSplitThreads) bias_lse_kernel(BiasLseArgs a) {
  using A = acc_t<T>;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  A* staged = reinterpret_cast<A*>(shared_bytes);
  wait_for_previous_grid();
  stage_biases<T, kStaged>(a, staged);
  const ColumnBiases<T, kStaged> biases{a, staged};
  constexpr int kRowsPerBlock = kSplitThreads / kLanes;
  const int lane = threadIdx.x % kLanes;
  // Every lane of a group runs the same number of trips, so the shuffles see the whole warp.
  for (int64_t row0 = int64_t{blockIdx.x} * kRowsPerBlock; row0 < a.batch; row0 += int64_t{gridDim.x} * kRowsPerBlock) {
    const int64_t row = row0 + threadIdx.x / kLanes;
    Lse<A> state{-INFINITY, A(0)};
    if (row < a.batch) state = lane_lse<T, kStaged, kSplit>(biases, row, lane, kLanes);
    state = group_lse<A, kLanes>(state);
    if (lane == 0 && row < a.batch) write_lse<T>(a, row, state);
  }
}

// A block per row: few rows of many logits (B of a few hundred, C_out in the thousands) would otherwise leave most
// of the device idle while each warp walks its row alone.
template <typename T, bool kStaged, bool kSplit = false>
__global__ void __launch_bounds__(kSplitThreads) bias_lse_block_kernel(BiasLseArgs a) {
  using A = acc_t<T>;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  A* staged = reinterpret_cast<A*>(shared_bytes);
  wait_for_previous_grid();
  stage_biases<T, kStaged>(a, staged);
  const ColumnBiases<T, kStaged> biases{a, staged};
  for (int64_t row = blockIdx.x; row < a.batch; row += gridDim.x) {
    const Lse<A> state =
        block_lse(lane_lse<T, kStaged, kSplit>(biases, row, static_cast<int>(threadIdx.x), kSplitThreads));
    if (threadIdx.x == 0) write_lse<T>(a, row, state);
  }
}

// Split partials each thread of bias_lse's row kernel loads at once per column: at 1024 threads a thread has 64
// registers, and float64's [kRowSplitLoadsAtOnce][kBiasLseRowLoads] partials take 16 of them.
constexpr int kRowSplitLoadsAtOnce = 2;

// A block of kBiasLseRowThreads threads per row, for rows that one trip of kBiasLseRowLoads loads a thread covers
// (C_out up to their product, tuning.h): a thread's columns are the same in every row, so their biases' sums are
// loaded once, into registers, before the wait for the GEMM (the caller's tensors, ready before it); each row's
// logits are then all in flight at once, and one rescale and an exp per value follow, spread over four times the
// warps of bias_lse_block_kernel, which walks a row in trips of kLoadsAtOnce, each waiting on its loads (the biases
// beside the logits) and then on its exps. kSplit: each logit the sum of a.splits partials, added in split order
// (lane_lse's order), kRowSplitLoadsAtOnce splits' loads of a thread in flight together.
template <typename T, bool kSplit = false>
__global__ void __launch_bounds__(kBiasLseRowThreads) bias_lse_row_kernel(BiasLseArgs a) {
  using A = acc_t<T>;
  const int c_out = static_cast<int>(a.c_out), t = static_cast<int>(threadIdx.x);
  A bias_total[kBiasLseRowLoads];  // column t + i x kBiasLseRowThreads's bias + conv_bias (0 past C_out)
  {
    const T* bias = static_cast<const T*>(a.bias);
    const T* conv_bias = static_cast<const T*>(a.conv_bias);
#pragma unroll
    for (int i = 0; i < kBiasLseRowLoads; ++i) {
      const int n = t + i * kBiasLseRowThreads;
      bias_total[i] = n < c_out ? column_bias(bias, a.bias_stride, conv_bias, n) : A(0);
    }
  }
  wait_for_previous_grid();
  const A scale = static_cast<A>(a.scale);
  const int64_t split_stride = a.batch * c_out;
  for (int64_t row = blockIdx.x; row < a.batch; row += gridDim.x) {
    const A* row_logits = static_cast<const A*>(a.logits) + row * c_out;  // [C_out], split s's at s x split_stride
    A v[kBiasLseRowLoads];
    if constexpr (kSplit) {
      load_split_sums<kRowSplitLoadsAtOnce>(row_logits, a.splits, split_stride, t, kBiasLseRowThreads, c_out, v);
    } else {
      load_strided(row_logits, t, kBiasLseRowThreads, c_out, v);
    }
#pragma unroll
    for (int i = 0; i < kBiasLseRowLoads; ++i) {
      v[i] = t + i * kBiasLseRowThreads < c_out ? scale * v[i] + bias_total[i] : A(-INFINITY);
    }
    Lse<A> state{-INFINITY, A(0)};
    lse_push_all(state, v);
    state = block_lse<A, kBiasLseRowThreads>(state);
    if (t == 0) write_lse<T>(a, row, state);
  }
}

// Logits that are per-channel shares to add first (BiasLseArgs::channels > 1, the tap kernels' shares of padding's
// cropped GEMM), or, kWeighted (BiasLseArgs::row_sums: the gemv epilogue), shares row_sums[row, c] x W.sum[c, n],
// each logit a dot product of the row's sums with a column of W.sum: a block per row, its threads across columns and
// a.slices slices of the channels, kLoads channels in flight each (a row's few blocks wait on L2 once per trip:
// written first with 4 loads a trip, each behind a predicate kept until its add, ptxas issued them one at a time and
// the headline's padding-1 launch took 14 us, H200); the slices' sums added in order in shared memory. One launch
// where torch's sum over the channels and bias_lse took two (4.1 and 2.2 us); for the gemv epilogue, one launch
// where the tiled kernel's few column tiles each waited on a chain of depth steps, then on its merge's launch.
template <typename T, bool kStaged, bool kWeighted>
__global__ void __launch_bounds__(kSplitThreads) shares_lse_kernel(BiasLseArgs a) {
  using A = acc_t<T>;
  constexpr int kLoads = shares_lse_loads(sizeof(A));
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  A* staged = reinterpret_cast<A*>(shared_bytes);
  __shared__ A slice_sums[kSplitThreads];
  // The biases are the caller's, ready before this grid starts (launch.cuh): staged while the grid ahead ends (the
  // reader, or the tap kernels' combine: 0.5 us of the headline's padded tail, H200).
  stage_biases<T, kStaged>(a, staged);
  wait_for_previous_grid();
  const ColumnBiases<T, kStaged> biases{a, staged};
  const int columns = kSplitThreads / a.slices;
  const int column = threadIdx.x % columns, slice = threadIdx.x / columns;
  const A scale = static_cast<A>(a.scale);
  for (int64_t row = blockIdx.x; row < a.batch; row += gridDim.x) {
    // [channels, c_out]: this row's shares, or W.sum
    const A* shares = static_cast<const A*>(a.logits) + (kWeighted ? 0 : row * a.channels * a.c_out);
    const A* factors = kWeighted ? static_cast<const A*>(a.row_sums) + row * a.channels : nullptr;  // [channels]
    Lse<A> state{-INFINITY, A(0)};
    for (int64_t n0 = 0; n0 < a.c_out; n0 += columns) {
      const int64_t n = n0 + column;
      A total = 0;
      if (n < a.c_out) {
        // Whole trips as they are, the last stopping at the channels' end (`break`: a predicate per load, kept
        // until its add, leaves ptxas issuing one load at a time; read_plane_lanes.cuh's lane_share).
        for (int64_t c0 = slice;; c0 += static_cast<int64_t>(a.slices) * kLoads) {
          A v[kLoads], factor[kWeighted ? kLoads : 1];
          int loaded = 0;
#pragma unroll
          for (int u = 0; u < kLoads; ++u) {
            const int64_t c = c0 + static_cast<int64_t>(u) * a.slices;
            if (c >= a.channels) break;
            v[u] = shares[c * a.c_out + n];
            if constexpr (kWeighted) factor[u] = factors[c];  // the block's threads read one address
            ++loaded;
          }
#pragma unroll
          for (int u = 0; u < kLoads; ++u) {
            if (u >= loaded) break;
            if constexpr (kWeighted) {
              total = fma(factor[u], v[u], total);
            } else {
              total += v[u];
            }
          }
          if (loaded < kLoads) break;
        }
      }
      slice_sums[threadIdx.x] = total;
      __syncthreads();
      if (slice == 0 && n < a.c_out) {
        A logit = 0;
        for (int k = 0; k < a.slices; ++k) logit += slice_sums[k * columns + column];
        lse_push(state, biases.biased(scale, logit, static_cast<int>(n)));
      }
      __syncthreads();  // slice_sums is the next pass's
    }
    state = block_lse(state);
    if (threadIdx.x == 0) write_lse<T>(a, row, state);
  }
}

// Blocks of kKernel (kThreads threads) that fit on the current device at once, counted at kShared bytes of
// dynamic shared memory (the most its launches take), from the occupancy calculator once per device: the float64
// kernels' registers (58-71) leave room for 3 blocks a multiprocessor on an H200 where the split kernels' share
// (resident_split_blocks) counts 8.
template <auto kKernel, size_t kShared, int kThreads = kSplitThreads> int64_t resident_bias_lse_blocks() {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return 1;
  return once_per_key(device, [device] {
    int multiprocessors = 0;
    const cudaError_t read = cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device);
    if (read != cudaSuccess) return int64_t{1};
    return int64_t{std::max(multiprocessors, 1)} * resident_blocks_per_sm(kKernel, kThreads, kShared);
  });
}

// bias_lse's row kernel (kKernel, a bias_lse_row_kernel): a block per row, as many as fit on the device at once.
template <auto kKernel> cudaError_t launch_bias_lse_rows(const BiasLseArgs& a, cudaStream_t stream) {
  const int64_t resident = resident_bias_lse_blocks<kKernel, 0, kBiasLseRowThreads>();
  const auto blocks = static_cast<unsigned>(std::min<int64_t>(resident, a.batch));
  return launch_after_previous(kKernel, blocks, kBiasLseRowThreads, stream, a);
}

template <typename T, bool kStaged>
cudaError_t launch_bias_lse_staged(const BiasLseArgs& a, int64_t max_blocks, size_t shared, cudaStream_t stream) {
  constexpr size_t kMostShared = kStaged ? kBiasLseMaxStagedBytes : 0;
  if (a.channels > 1 || a.row_sums != nullptr) {
    const auto launch = [&](auto kernel, int64_t resident) {
      const auto blocks = static_cast<unsigned>(std::min({max_blocks, resident, a.batch}));
      return launch_after_previous_with_shared(kernel, blocks, kSplitThreads, shared, stream, a);
    };
    if (a.row_sums != nullptr) {
      constexpr auto kKernel = shares_lse_kernel<T, kStaged, true>;
      return launch(kKernel, resident_bias_lse_blocks<kKernel, kMostShared>());
    }
    constexpr auto kKernel = shares_lse_kernel<T, kStaged, false>;
    return launch(kKernel, resident_bias_lse_blocks<kKernel, kMostShared>());
  }
  // Rows of enough logits to keep a block busy, and too few of them for a warp per row to fill a quarter of the
  // device: a block per row (C_out 2892 on 70 rows, r18: one warp per row walked each row alone).
  const bool block_per_row = a.c_out >= 2 * kSplitThreads && a.batch * 32 * 4 < max_blocks * kSplitThreads;
  const bool row_kernel = block_per_row && a.c_out <= kBiasLseRowThreads * kBiasLseRowLoads;
  if (a.splits > 1 && row_kernel) return launch_bias_lse_rows<bias_lse_row_kernel<T, true>>(a, stream);
  if (a.splits > 1 && block_per_row) {  // split-K's partials (plan::gemm_tiling): a block or a warp per row
    constexpr auto kKernel = bias_lse_block_kernel<T, kStaged, true>;
    const int64_t resident = std::min(max_blocks, resident_bias_lse_blocks<kKernel, kMostShared>());
    const auto blocks = static_cast<unsigned>(std::min<int64_t>(resident, a.batch));
    return launch_after_previous_with_shared(kKernel, blocks, kSplitThreads, shared, stream, a);
  }
  if (a.splits > 1) {
    constexpr int64_t kRowsPerBlock = kSplitThreads / 32;
    constexpr auto kKernel = bias_lse_kernel<T, 32, kStaged, true>;
    const int64_t resident = std::min(max_blocks, resident_bias_lse_blocks<kKernel, kMostShared>());
    const int64_t blocks = std::min<int64_t>(resident, (a.batch + kRowsPerBlock - 1) / kRowsPerBlock);
    return launch_after_previous_with_shared(kKernel, static_cast<unsigned>(blocks), kSplitThreads, shared, stream,
                                             a);
  }
  if (row_kernel) return launch_bias_lse_rows<bias_lse_row_kernel<T, false>>(a, stream);
  if (block_per_row) {
    constexpr auto kKernel = bias_lse_block_kernel<T, kStaged>;
    const int64_t resident = std::min(max_blocks, resident_bias_lse_blocks<kKernel, kMostShared>());
    const auto blocks = static_cast<unsigned>(std::min<int64_t>(resident, a.batch));
    return launch_after_previous_with_shared(kKernel, blocks, kSplitThreads, shared, stream, a);
  }
  return with_row_lanes((a.c_out + kBiasLseValuesPerLane - 1) / kBiasLseValuesPerLane, [&](auto lanes) {
    constexpr int64_t kRowsPerBlock = kSplitThreads / decltype(lanes)::value;
    constexpr auto kKernel = bias_lse_kernel<T, decltype(lanes)::value, kStaged>;
    const int64_t resident = std::min(max_blocks, resident_bias_lse_blocks<kKernel, kMostShared>());
    const int64_t blocks = std::min<int64_t>(resident, (a.batch + kRowsPerBlock - 1) / kRowsPerBlock);
    return launch_after_previous_with_shared(kKernel, static_cast<unsigned>(blocks), kSplitThreads, shared, stream,
                                             a);
  });
}

}  // namespace

cudaError_t launch_plane_lanes(const PlaneLanesArgs& a, cudaStream_t stream) {
  return with_plane_lanes_kernel(a, cudaErrorInvalidValue, [&](auto kernel) {
    return launch_after_previous(kernel, static_cast<unsigned>(a.blocks), kSplitThreads, stream, a);
  });
}

// Dynamic shared memory of the run walk's block: its staged sums, padded (staged_slot); or the staged walk's two
// tiles.
template <typename T> size_t plane_runs_shared_bytes(const PlaneRunsArgs& a) {
  if (a.staged) return 2 * sizeof(uint4) * static_cast<size_t>(plane_tile_vectors(a.item_planes, a.plane, sizeof(T)));
  const int64_t sums = kSplitThreads * a.item_planes;
  return static_cast<size_t>(sums + sums / 32 + 1) * sizeof(acc_t<T>);
}

cudaError_t launch_plane_runs(const PlaneRunsArgs& a, cudaStream_t stream) {
  return with_element_type(a.kind, cudaErrorInvalidValue, [&](auto element) {
    using T = decltype(element);
    return launch_after_previous_with_shared(a.staged ? plane_tiles_kernel<T> : plane_runs_kernel_for<T>(a),
                                             static_cast<unsigned>(a.blocks), kSplitThreads,
                                             plane_runs_shared_bytes<T>(a), stream, a);
  });
}

int plane_runs_blocks_per_sm(const PlaneRunsArgs& a) {
  return with_element_type(a.kind, 1, [&](auto element) {
    using T = decltype(element);
    return resident_blocks_per_sm(a.staged ? plane_tiles_kernel<T> : plane_runs_kernel_for<T>(a), kSplitThreads,
                                  plane_runs_shared_bytes<T>(a));
  });
}

cudaError_t launch_channel_rows(const ChannelRowsArgs& a, cudaStream_t stream) {
  return with_element_type(a.kind, cudaErrorInvalidValue, [&](auto element) {
    using T = decltype(element);
    return launch_after_previous_with_shared(channel_rows_kernel_for<T>(a), static_cast<unsigned>(a.blocks),
                                             kSplitThreads, static_cast<size_t>(a.shared_bytes), stream, a);
  });
}

int channel_rows_blocks_per_sm(const ChannelRowsArgs& a) {
  return with_element_type(a.kind, 1, [&](auto element) {
    return resident_blocks_per_sm(channel_rows_kernel_for<decltype(element)>(a), kSplitThreads,
                                  static_cast<size_t>(a.shared_bytes));
  });
}

int plane_lanes_blocks_per_sm(const PlaneLanesArgs& a) {
  return with_plane_lanes_kernel(a, 1, [](auto kernel) { return resident_blocks_per_sm(kernel, kSplitThreads); });
}

cudaError_t launch_bias_lse(const BiasLseArgs& a, int64_t max_blocks, cudaStream_t stream) {
  return with_element_type(a.kind, cudaErrorInvalidValue, [&](auto element) {
    using T = decltype(element);
    const size_t shared = bias_lse_shared_bytes<acc_t<T>>(a.c_out);
    return shared > 0 ? launch_bias_lse_staged<T, true>(a, max_blocks, shared, stream)
                      : launch_bias_lse_staged<T, false>(a, max_blocks, 0, stream);
  });
}

}  // namespace fusedlse
