// Reading planes by groups of lanes (the plane-lanes reader, PlaneLanesArgs): how a lane walks its elements of a
// plane in any layout, and its share of a plane's sum. The kernels that use it are in ../split.cu.
#pragma once

#include "load.cuh"

#include <type_traits>

namespace fusedlse {
namespace {

// How a lane walks its elements of a plane (PlaneLanesArgs).
//  kRows:    element e at (e / width) * stride_h + (e % width) * stride_w; the lane steps kLanes elements at a time,
//            carrying its column and offset, with one more row's stride when the column passes the width.
//  kOneRow:  element e at e * stride_w (height 1).
//  kVectors: unit e is the 16-byte vector at element e * vec (height 1, stride_w 1, every plane aligned).
enum class Walk { kRows, kOneRow, kVectors };

// A kLanes-element step of the kRows walk, for every lane: columns and offset it moves, and the offset to add when the
// column passes the width. 32-bit, as every offset within a plane is (PlaneLanesArgs): the walk's few integer
// operations per element are what bounds 16-bit planes of strided rows.
struct RowStep {
  int32_t columns, offset, wrap;
};
template <int kLanes> __device__ __forceinline__ RowStep row_step(const PlaneLanesArgs& a) {
  const int64_t rows = kLanes / a.width, columns = kLanes - rows * a.width;
  return RowStep{static_cast<int32_t>(columns), static_cast<int32_t>(rows * a.stride_h + columns * a.stride_w),
                 static_cast<int32_t>(a.stride_h - a.width * a.stride_w)};
}

// The sum of one lane's units e, e + kLanes, e + 2 kLanes, ... below `end` of the plane at `plane`, in trips of
// kLoads loads, all issued before the trip's adds: whole trips as they are, the last partial one stopping at the end
// (`break`, not a predicate per load), both inside one loop. Written as a loop of whole trips followed by the partial
// one, ptxas placed adds between the whole trips' loads (2-4 in flight per lane in the SASS, not 8-16;
// docs/limits.md §11); with a predicate per load, kept until its add, it ran out of predicate registers and issued
// one load at a time (1.7x slower on r35 of the sweep). Summed in a fixed order: the reader is bitwise reproducible.
template <typename T, int kLanes, Walk kWalk>
__device__ __forceinline__ acc_t<T> lane_share(const PlaneLanesArgs& a, const RowStep& step, const T* plane,
                                               int32_t e, int32_t end) {
  using A = acc_t<T>;
  using Load = std::conditional_t<kWalk == Walk::kVectors, uint4, T>;
  // 16-bit scalars: twice the loads for the same bytes in flight.
  constexpr int kLoads = sizeof(T) == 2 && kWalk != Walk::kVectors ? 16 : 8;
  const auto sum = [](const Load& v) {
    if constexpr (kWalk == Walk::kVectors) {
      return vec_sum<T>(v);
    } else {
      return to_acc(v);
    }
  };
  // Where the walk stands: unit e's offset in elements (or vectors), and for kRows its column.
  const int32_t width = static_cast<int32_t>(a.width), stride_w = static_cast<int32_t>(a.stride_w);
  int32_t column = 0, offset;
  if constexpr (kWalk == Walk::kRows) {
    column = e;  // one division per item, none for the first row of a plane
    offset = e * stride_w;
    if (e >= width) {
      const int32_t row = e / width;
      column = e - row * width;
      offset = row * static_cast<int32_t>(a.stride_h) + column * stride_w;
    }
  } else {
    offset = kWalk == Walk::kVectors ? e : e * stride_w;
  }
  const auto load_and_step = [&]() {
    Load v;
    if constexpr (kWalk == Walk::kVectors) {
      v = __ldcs(reinterpret_cast<const uint4*>(plane) + offset);  // each byte read once: do not keep it in L1
    } else {
      v = __ldg(plane + offset);
    }
    if constexpr (kWalk == Walk::kRows) {
      column += step.columns;
      offset += step.offset;
      if (column >= width) {
        column -= width;
        offset += step.wrap;
      }
    } else {
      offset += kWalk == Walk::kVectors ? kLanes : kLanes * stride_w;
    }
    return v;
  };
  A acc = A(0);
  for (; e < end; e += kLoads * kLanes) {
    Load v[kLoads];
    if (e + (kLoads - 1) * kLanes < end) {
#pragma unroll
      for (int i = 0; i < kLoads; ++i) v[i] = load_and_step();
#pragma unroll
      for (int i = 0; i < kLoads; ++i) acc += sum(v[i]);
    } else {
#pragma unroll
      for (int i = 0; i < kLoads; ++i) {
        if (e + i * kLanes >= end) break;
        v[i] = load_and_step();
      }
#pragma unroll
      for (int i = 0; i < kLoads; ++i) {
        if (e + i * kLanes >= end) break;
        acc += sum(v[i]);
      }
    }
  }
  return acc;
}

}  // namespace
}  // namespace fusedlse
