// Reading runs of adjacent tiny planes (the plane-lanes reader's run walk, PlaneRunsArgs): one thread's sums of an
// item, a few planes that follow each other in memory, loaded as the whole aligned 16-byte vectors around them. The
// kernel that uses it is in ../split.cu.
#pragma once

#include "load.cuh"

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

}  // namespace
}  // namespace fusedlse
