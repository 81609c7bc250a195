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
//  kInnerVectors: the same from each plane's first aligned vector (planes that start anywhere in one); the kernel
//            adds the elements around the whole vectors itself, and walks the vectors with lane_share's kVectors.
//  kMaskedVectors: rows of stride_w 1 whose gaps are shorter than a DRAM sector (the host checks): unit e is the
//            e-th aligned 16-byte vector from the one holding the plane's first element, and the lane adds the
//            elements of it that lie in the plane (masked_lane_share).
enum class Walk { kRows, kOneRow, kVectors, kInnerVectors, kMaskedVectors };

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
template <typename T, int kLanes, Walk kWalk, bool kEvictFirst>
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
      v = load_once<kEvictFirst>(reinterpret_cast<const uint4*>(plane) + offset);
    } else {
      v = load_once<kEvictFirst>(plane + offset);
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

// The sum of one lane's units e, e + kLanes, ... below `end` of a plane of strided rows read as whole aligned 16-byte
// vectors (Walk::kMaskedVectors): vector e is base[e], and its element j is the plane's element
// o = e * vec - misalign + j, added where it lies in the plane's span [0, span) and in the first `width` of its
// row's `row_stride` elements. A plane of a few short rows then costs a few full-width loads instead of a scalar
// load per element (each request touching a sector per lane), and the gaps loaded with the rows are bytes DRAM
// would fetch anyway. The column of a lane's next vector moves by a fixed step: one division per lane and item.
// Trips of loads all issued before their adds, whole and partial ones as in lane_share; summed in a fixed order.
template <typename T, int kLanes, bool kEvictFirst>
__device__ __forceinline__ acc_t<T> masked_lane_share(const uint4* base, int32_t misalign, int32_t span,
                                                      int32_t row_stride, int32_t width, int32_t e, int32_t end) {
  using A = acc_t<T>;
  constexpr int kVec = 16 / sizeof(T);
  constexpr int kLoads = 8;
  int32_t first = e * kVec - misalign;  // the plane's element at this vector's first slot (negative before it)
  int32_t column = first % row_stride;
  if (column < 0) column += row_stride;
  const int32_t step = (kLanes * kVec) % row_stride;
  const auto add_vector = [&](A& acc, const uint4& v, int32_t o, int32_t c) {
#pragma unroll
    for (int j = 0; j < kVec; ++j) {
      const bool inside = c < width && static_cast<uint32_t>(o + j) < static_cast<uint32_t>(span);
      acc += inside ? vec_elem<T>(v, j) : A(0);
      c = c + 1 == row_stride ? 0 : c + 1;
    }
  };
  uint4 v[kLoads];
  int32_t o[kLoads], c[kLoads];
  const auto load_and_step = [&](int i, int32_t unit) {
    v[i] = load_once<kEvictFirst>(base + unit);  // neighbouring planes may share a vector: L1 keeps it a while
    o[i] = first;
    c[i] = column;
    first += kLanes * kVec;
    column += step;
    if (column >= row_stride) column -= row_stride;
  };
  A acc = A(0);
  for (; e < end; e += kLoads * kLanes) {
    if (e + (kLoads - 1) * kLanes < end) {
#pragma unroll
      for (int i = 0; i < kLoads; ++i) load_and_step(i, e + i * kLanes);
#pragma unroll
      for (int i = 0; i < kLoads; ++i) add_vector(acc, v[i], o[i], c[i]);
    } else {
#pragma unroll
      for (int i = 0; i < kLoads; ++i) {
        if (e + i * kLanes >= end) break;
        load_and_step(i, e + i * kLanes);
      }
#pragma unroll
      for (int i = 0; i < kLoads; ++i) {
        if (e + i * kLanes >= end) break;
        add_vector(acc, v[i], o[i], c[i]);
      }
    }
  }
  return acc;
}

}  // namespace
}  // namespace fusedlse
