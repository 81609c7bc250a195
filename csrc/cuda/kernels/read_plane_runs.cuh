// Reading runs of adjacent tiny planes (the plane-lanes reader's run walk, PlaneRunsArgs): one thread's sums of an
// item, a few planes that follow each other in memory, loaded as the whole aligned 16-byte vectors around them; and
// the bodies of ../split.cu's plane_runs_kernel and plane_tiles_kernel (plane_runs_sums, plane_tiles_sums).
#pragma once

#include "../launch.cuh"
#include "load.cuh"

#include <cuda_pipeline_primitives.h>

namespace fusedlse {
namespace {

// A place in the runs' items, (run, item within it), stepped through them by a fixed count (the grid's threads,
// or its blocks): one 64-bit division when made, none per step.
struct RunPlace {
  int64_t run, item;
};
struct RunStepper {
  int64_t run_items, run_step, item_step;
  __device__ RunStepper(int64_t run_items, int64_t step)
      : run_items(run_items), run_step(step / run_items), item_step(step - step / run_items * run_items) {}
  __device__ RunPlace at(int64_t index) const {
    const int64_t run = index / run_items;
    return {run, index - run * run_items};
  }
  __device__ RunPlace next(RunPlace p) const {
    p.item += item_step;
    p.run += run_step;
    if (p.item >= run_items) {
      p.item -= run_items;
      ++p.run;
    }
    return p;
  }
};

// store(k, sum of plane k) for the `planes` planes of `plane` elements each that follow each other from `first`, in
// order. The thread loads the aligned 16-byte vectors from the one holding `first` to the one holding the last
// element, in trips of kLoads loads all issued before their adds, and adds each element to its plane's sum, in
// order: the sums are bitwise reproducible. The first vector's slots before `first` are left out; the last vector's
// slots past the end are added to a sum that is never stored (a neighbouring item's elements, or up to 15 bytes
// outside x's storage, which the host allows for). A plane of a few elements would otherwise cost a scalar load per
// element, each a sector request of its own.
template <typename T, bool kEvictFirst, typename Store>
__device__ __forceinline__ void run_item_sums(const T* first, int32_t planes, int32_t plane, Store&& store) {
  using A = acc_t<T>;
  constexpr int kVec = 16 / sizeof(T);
  constexpr int kLoads = 8;
  const uintptr_t address = reinterpret_cast<uintptr_t>(first);
  const uint4* base = reinterpret_cast<const uint4*>(address - (address & 15));
  const int32_t misalign = static_cast<int32_t>((address & 15) / sizeof(T));
  const int32_t vectors = (misalign + planes * plane + kVec - 1) / kVec;
  // The slot of the current plane's last element, counted from the current vector's first slot: one compare with
  // a constant per element finds the planes' ends, where a plane's sum is stored and the next one begins. Past the
  // last plane it moves out of reach.
  constexpr int32_t kNever = 1 << 30;
  int32_t last = misalign + plane - 1;
  int32_t stored = 0;
  A acc = A(0);
  const auto add = [&](const uint4& v, int32_t skipped) {
#pragma unroll
    for (int j = 0; j < kVec; ++j) {
      acc += j < skipped ? A(0) : vec_elem<T>(v, j);
      if (last == j) {
        store(stored, acc);
        acc = A(0);
        last = ++stored < planes ? last + plane : kNever;
      }
    }
    last -= kVec;
  };
  uint4 v[kLoads];
  for (int32_t u = 0; u < vectors; u += kLoads) {
    // A misaligned item shares its first and last vectors with its neighbours: L1 keeps them a while.
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      if (u + i >= vectors) break;
      v[i] = load_once<kEvictFirst>(base + u + i);
    }
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      if (u + i >= vectors) break;
      add(v[i], i == 0 && u == 0 ? misalign : 0);
    }
  }
}

// The sums of the planes of kPlane elements that one aligned 16-byte vector holds whole (planes that never straddle
// a vector): store(s, the sum of slot s's plane) for the vector's kVec / kPlane slots s where keep(s). A fixed
// pattern of adds, no per-element bookkeeping.
template <typename T, int kPlane, typename Keep, typename Store>
__device__ __forceinline__ void vector_plane_sums(const uint4& v, Keep&& keep, Store&& store) {
  constexpr int kVec = 16 / sizeof(T);
  static_assert(kPlane > 0 && kVec % kPlane == 0, "planes must tile the vector");
#pragma unroll
  for (int s = 0; s < kVec / kPlane; ++s) {
    acc_t<T> sum = vec_elem<T>(v, s * kPlane);
#pragma unroll
    for (int e = 1; e < kPlane; ++e) sum += vec_elem<T>(v, s * kPlane + e);
    if (keep(s)) store(s, sum);
  }
}

// The 16-byte vectors a tile of the staged walk (plane_tiles_kernel) can span: tile_planes planes (a multiple of
// kSplitThreads) of `plane` elements of `element_bytes` (a multiple of 16 bytes), starting anywhere in a vector.
__host__ __device__ constexpr int32_t plane_tile_vectors(int64_t tile_planes, int64_t plane, int64_t element_bytes) {
  return static_cast<int32_t>(tile_planes * plane * element_bytes / 16 + 1);
}

// The slot of a block's staged sum i (plane_runs_kernel): one word of padding every 32, so that threads storing
// planes item_planes apart, and the warps copying them out, hit distinct banks.
__device__ __forceinline__ int32_t staged_slot(int32_t i) { return i + (i >> 5); }

// A thread per item (PlaneRunsArgs), a block's items in a row: neighbouring threads read neighbouring bytes, and the
// block's sums, staged in shared memory, are a contiguous part of `out`, written by the whole block in order.
// (Stored by each thread, a warp's stores hit a sector per lane: the sums' writes, not x's reads, took the time.)
// kPlane 0: planes of any size (run_item_sums); 1, 2, 4 or 8: planes of kPlane elements that never straddle a
// 16-byte vector, an item being kPlaneRunsItemVectors aligned vectors of a run (vector_plane_sums).
template <typename T, int kPlane>
__device__ __forceinline__ void plane_runs_sums(PlaneRunsArgs a) {
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

// The staged walk (PlaneRunsArgs::staged): tile k of run r is its planes [k, k + 1) x item_planes (fewer at the
// run's end), whose span of aligned 16-byte vectors the block copies into shared memory (neighbouring threads copy
// neighbouring vectors: each warp's copies are 512 contiguous bytes), the next tile's copies in flight while the
// threads add this one's planes there, planes t, t + kSplitThreads, ... for thread t. The vectors may reach up to 15
// bytes outside x (plane_runs_of allows for it); their bytes outside the tile are never added.
template <typename T>
__device__ __forceinline__ void plane_tiles_sums(PlaneRunsArgs a) {
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

}  // namespace
}  // namespace fusedlse
