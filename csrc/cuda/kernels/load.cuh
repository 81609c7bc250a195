// Loading x: 16-byte vectors and their sums, a warp's sum of a contiguous run (scalar head, vector body, scalar
// tail), a warp's sums of several short rows with their loads interleaved; a strided walk's loads at once.
#pragma once

#include "reduce.cuh"

#include <type_traits>

namespace fusedlse {
namespace {

// One load of x (or of the weight), each byte read once: evict-first (ld.global.cs) where the host found the tensor
// small next to the L2 (plan::evict_first_loads), cached (ld.global.nc) where it is large. Evict-first lines replace
// each other, not the dirty lines of whatever ran before, which a cached read of a small tensor pays to write back;
// on large tensors the evict-first policy reads 4-5% slower (bench/experiments/read_loads.cu, tuning.h's
// kEvictFirstMaxL2Share).
template <bool kEvictFirst, typename V> __device__ __forceinline__ V load_once(const V* p) {
  if constexpr (kEvictFirst) {
    return __ldcs(p);
  } else {
    return __ldg(p);
  }
}

// f(std::true_type{}) or f(std::false_type{}) as `evict_first` (the same for the whole grid) says: a loop of loads
// for each kind. With the choice made per load, every load sat behind a branch of its own and the fused reader ran
// up to 10% slower whichever kind it took (H200, docs/limits.md §23).
template <typename F> __device__ __forceinline__ decltype(auto) with_evict_first(bool evict_first, F&& f) {
  if (evict_first) return f(std::true_type{});
  return f(std::false_type{});
}

// v[i] = p[first + i x step] where that index is below `end`, else 0: a strided walk's N loads, all issued before
// any is used (a row's logits, a row's sums).
template <int N, typename A>
__device__ __forceinline__ void load_strided(const A* p, int first, int step, int end, A (&v)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) {
    const int k = first + i * step;
    v[i] = k < end ? p[k] : A(0);
  }
}

// v[i] = the sum over s < splits of p[s * split_stride + k], k = first + i * step (0 where k >= end): split-K's
// partial logits added in split order (the same every run), kSplitsAtOnce splits' N loads in flight together.
template <int kSplitsAtOnce, typename A, int N>
__device__ __forceinline__ void load_split_sums(const A* p, int64_t splits, int64_t split_stride, int first, int step,
                                                int end, A (&v)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) v[i] = A(0);
  for (int64_t s0 = 0; s0 < splits; s0 += kSplitsAtOnce) {
    A part[kSplitsAtOnce][N];
#pragma unroll
    for (int u = 0; u < kSplitsAtOnce; ++u) {
#pragma unroll
      for (int i = 0; i < N; ++i) {
        const int k = first + i * step;
        part[u][i] = s0 + u < splits && k < end ? p[(s0 + u) * split_stride + k] : A(0);
      }
    }
    // Zeros past the last split add nothing.
#pragma unroll
    for (int u = 0; u < kSplitsAtOnce; ++u) {
#pragma unroll
      for (int i = 0; i < N; ++i) v[i] += part[u][i];
    }
  }
}

// Sum of the elements packed in one 16-byte vector.
template <typename T> __device__ __forceinline__ acc_t<T> vec_sum(uint4 v);
template <> __device__ __forceinline__ float vec_sum<float>(uint4 v) {
  return (__uint_as_float(v.x) + __uint_as_float(v.y)) + (__uint_as_float(v.z) + __uint_as_float(v.w));
}
template <> __device__ __forceinline__ double vec_sum<double>(uint4 v) {
  const double lo = __hiloint2double(static_cast<int>(v.y), static_cast<int>(v.x));
  const double hi = __hiloint2double(static_cast<int>(v.w), static_cast<int>(v.z));
  return lo + hi;
}
template <typename P, typename F>
__device__ __forceinline__ float sum_pairs(uint4 v, F to_float2) {
  const unsigned words[4] = {v.x, v.y, v.z, v.w};
  float total[2] = {0.f, 0.f};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    P pair;
    memcpy(&pair, &words[i], sizeof(pair));
    const float2 f = to_float2(pair);
    total[i & 1] += f.x + f.y;
  }
  return total[0] + total[1];
}
template <> __device__ __forceinline__ float vec_sum<__half>(uint4 v) {
  return sum_pairs<__half2>(v, [](__half2 p) { return __half22float2(p); });
}
template <> __device__ __forceinline__ float vec_sum<__nv_bfloat16>(uint4 v) {
  return sum_pairs<__nv_bfloat162>(v, [](__nv_bfloat162 p) { return __bfloat1622float2(p); });
}

// The i-th element of a 16-byte vector, as the accumulation type.
template <typename T> __device__ __forceinline__ acc_t<T> vec_elem(const uint4& v, int i) {
  T e;
  memcpy(&e, reinterpret_cast<const char*>(&v) + i * sizeof(T), sizeof(T));
  return to_acc(e);
}

__device__ __forceinline__ int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

// One warp's sum of n contiguous elements at p: scalar head up to 16-byte alignment, 16-byte body with
// kLoadsInFlight loads in flight per lane, scalar tail. The result is the same in every lane.
template <typename T, bool kEvictFirst>
__device__ __forceinline__ acc_t<T> warp_chunk_sum(const T* p, int64_t n, int lane) {
  using A = acc_t<T>;
  constexpr int kVec = 16 / sizeof(T);
  const int64_t misalign = (reinterpret_cast<uintptr_t>(p) & 15) / sizeof(T);
  const int64_t head = imin(misalign ? kVec - misalign : 0, n);
  const int64_t vectors = (n - head) / kVec;
  const int64_t tail_begin = head + vectors * kVec;
  A acc[4] = {A(0), A(0), A(0), A(0)};
  if (lane < head) acc[0] += to_acc(p[lane]);
  if (lane < n - tail_begin) acc[1] += to_acc(p[tail_begin + lane]);
  const uint4* body = reinterpret_cast<const uint4*>(p + head);
  int64_t i = lane;
  for (; i + 32 * (kLoadsInFlight - 1) < vectors; i += 32 * kLoadsInFlight) {
    uint4 v[kLoadsInFlight];
#pragma unroll
    for (int u = 0; u < kLoadsInFlight; ++u) v[u] = load_once<kEvictFirst>(body + i + 32 * u);
#pragma unroll
    for (int u = 0; u < kLoadsInFlight; ++u) acc[u % 4] += vec_sum<T>(v[u]);
  }
  // Fewer than 32 * kLoadsInFlight vectors are left: one more trip, predicated, rather than a round trip per load.
  uint4 v[kLoadsInFlight];
#pragma unroll
  for (int u = 0; u < kLoadsInFlight; ++u)
    if (i + 32 * u < vectors) v[u] = load_once<kEvictFirst>(body + i + 32 * u);
#pragma unroll
  for (int u = 0; u < kLoadsInFlight; ++u)
    if (i + 32 * u < vectors) acc[u % 4] += vec_sum<T>(v[u]);
  return warp_sum((acc[0] + acc[1]) + (acc[2] + acc[3]));
}

// One warp's sums of up to kRowsAtOnce whole rows of n elements, loads of all rows interleaved so that short rows
// still keep several loads in flight. rows[r] is null for rows past the end.
template <typename T, int kRowsAtOnce, bool kEvictFirst>
__device__ __forceinline__ void warp_rows_sum(const T* const* rows, int64_t n, int lane, acc_t<T>* sums) {
  using A = acc_t<T>;
  constexpr int kVec = 16 / sizeof(T);
  int64_t head[kRowsAtOnce], vectors[kRowsAtOnce];
  A acc[kRowsAtOnce];
  int64_t most_vectors = 0;
#pragma unroll
  for (int r = 0; r < kRowsAtOnce; ++r) {
    acc[r] = A(0);
    head[r] = 0;
    vectors[r] = 0;
    if (rows[r] == nullptr) continue;
    const int64_t misalign = (reinterpret_cast<uintptr_t>(rows[r]) & 15) / sizeof(T);
    head[r] = imin(misalign ? kVec - misalign : 0, n);
    vectors[r] = (n - head[r]) / kVec;
    most_vectors = imax(most_vectors, vectors[r]);
    const int64_t tail_begin = head[r] + vectors[r] * kVec;
    if (lane < head[r]) acc[r] += to_acc(rows[r][lane]);
    if (lane < n - tail_begin) acc[r] += to_acc(rows[r][tail_begin + lane]);
  }
#pragma unroll 2
  for (int64_t i = lane; i < most_vectors; i += 32) {
    uint4 v[kRowsAtOnce];
#pragma unroll
    for (int r = 0; r < kRowsAtOnce; ++r)
      if (i < vectors[r]) v[r] = load_once<kEvictFirst>(reinterpret_cast<const uint4*>(rows[r] + head[r]) + i);
#pragma unroll
    for (int r = 0; r < kRowsAtOnce; ++r)
      if (i < vectors[r]) acc[r] += vec_sum<T>(v[r]);
  }
#pragma unroll
  for (int r = 0; r < kRowsAtOnce; ++r) sums[r] = warp_sum(acc[r]);
}

// One trip of loads: v[i] = load(i) for each i < kLoads until stop(i) holds (true from then on), every load issued
// before add(i, v[i]) takes the first value. Stopping with `break`, not a predicate per load kept until its add: with
// predicates ptxas ran out of predicate registers and issued one load at a time (read_plane_lanes.cuh).
template <typename V, int kLoads, typename Stop, typename Load, typename Add>
__device__ __forceinline__ void load_trip_until(Stop&& stop, Load&& load, Add&& add) {
  V v[kLoads];
#pragma unroll
  for (int i = 0; i < kLoads; ++i) {
    if (stop(i)) break;
    v[i] = load(i);
  }
#pragma unroll
  for (int i = 0; i < kLoads; ++i) {
    if (stop(i)) break;
    add(i, v[i]);
  }
}

// The same trip over i < count (at most kLoads), add(v[i]).
template <typename V, int kLoads, typename Load, typename Add>
__device__ __forceinline__ void load_trip(int count, Load&& load, Add&& add) {
  load_trip_until<V, kLoads>([&](int i) { return i >= count; }, load, [&](int, const V& value) { add(value); });
}

// Items first, first + step, ... below `end`: trips of kLoads loads (load(i) -> T), each followed by its stores
// (store(i, value)) in order: load_trip_until's trip, written out. Through load_trip_until, small_plane_taps_kernel
// <double, true> spilled on sm_90 (three 8-byte values to local memory; ptxas 13.0).
template <int kLoads, typename T, typename Load, typename Store>
__device__ __forceinline__ void loads_then_stores(int first, int end, int step, Load&& load, Store&& store) {
  for (int i0 = first; i0 < end; i0 += kLoads * step) {
    T v[kLoads];
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      if (i0 + u * step >= end) break;
      v[u] = load(i0 + u * step);
    }
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      if (i0 + u * step >= end) break;
      store(i0 + u * step, v[u]);
    }
  }
}

// One value of W.sum((2,3)): the sum of its kernel_area taps, in order.
template <typename T>
__device__ __forceinline__ acc_t<T> tap_sum(const T* taps, int64_t kernel_area) {
  acc_t<T> s = acc_t<T>(0);
  for (int64_t q = 0; q < kernel_area; ++q) s += to_acc(taps[q]);
  return s;
}

// Up to kTapLoads taps of a weight value loaded at once: a 3 x 3 kernel's in one round trip, not one per tap. The
// same order of additions as tap_sum. For a self-contained tile's first value per thread (stage_tile_inputs): in
// its loop as well, the 16 loads spilled the fused 16- and 32-bit kernels (ptxas, sm_90).
constexpr int kTapLoads = 16;
template <typename T>
__device__ __forceinline__ acc_t<T> tap_sum_batched(const T* taps, int64_t kernel_area) {
  acc_t<T> s = acc_t<T>(0);
  for (int64_t q0 = 0; q0 < kernel_area; q0 += kTapLoads) {
    T v[kTapLoads];
#pragma unroll
    for (int j = 0; j < kTapLoads; ++j)
      if (q0 + j < kernel_area) v[j] = taps[q0 + j];
#pragma unroll
    for (int j = 0; j < kTapLoads; ++j)
      if (q0 + j < kernel_area) s += to_acc(v[j]);
  }
  return s;
}

// Where pair i = c * c_out + n of W.sum [C_in, c_out] finds its taps in a weight of nn.ConvTranspose2d's grouped
// layout [C_in, c_out / groups, taps] (contiguous; `channels` = C_in): the offset of its first tap, or -1 where
// column n lies outside input channel c's group (that pair's W.sum is 0: the GEMM of groups is block-diagonal). The
// kernels sum the grouped weight in place: a dense copy of it took two launches ahead of each forward.
__device__ __forceinline__ int64_t grouped_taps_offset(int64_t i, int64_t channels, int64_t c_out, int64_t groups,
                                                      int64_t taps) {
  if (groups == 1) return i * taps;
  const int64_t c = i / c_out, group_columns = c_out / groups;
  const int64_t column = i - c * c_out - c / (channels / groups) * group_columns;
  return column >= 0 && column < group_columns ? (c * group_columns + column) * taps : -1;
}

// W.sum((2,3))'s pair i (grouped_taps_offset): the sum of its taps, 0 outside its input channel's group.
template <typename T>
__device__ __forceinline__ acc_t<T> pair_tap_sum(const T* weight, int64_t i, int64_t channels, int64_t c_out,
                                                 int64_t groups, int64_t taps) {
  const int64_t offset = grouped_taps_offset(i, channels, c_out, groups, taps);
  return offset < 0 ? acc_t<T>(0) : tap_sum(weight + offset, taps);
}

// W.sum((2,3)) by every thread of a reader's grid before its items of x (WeightFold): the split strategy's
// weight then costs no launch of its own. Pair i goes to the grid's thread i, i + threads, ...; unrolled by four, so
// that a thread can keep several pairs' loads in flight on a large weight.
template <typename T> __device__ __forceinline__ void fold_weight(const WeightFold& f) {
  if (f.weight == nullptr) return;
  const T* weight = static_cast<const T*>(f.weight);
  acc_t<T>* out = static_cast<acc_t<T>*>(f.out);
  const int64_t step = int64_t{gridDim.x} * blockDim.x;
#pragma unroll 4
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < f.pairs; i += step) {
    out[i] = tap_sum(weight + i * f.taps, f.taps);
  }
}

}  // namespace
}  // namespace fusedlse
