// Reading channels-last x by rows of channels (the channel-rows reader, ChannelRowsArgs): a block takes one batch's
// chunk of pixels, each pixel a row of C adjacent channels, and adds every channel down the chunk. Neighbouring
// threads read neighbouring channels, so each warp's loads are one contiguous run of memory whatever C is, aligned
// or not. Where pixels follow each other, the vector walk reads each batch as one run of 16-byte vectors instead.
// The kernels that use it are in ../split.cu.
#pragma once

#include "load.cuh"

namespace fusedlse {
namespace {

// Loads a thread keeps in flight down its column: one trip, all issued before its adds (16-bit scalars: twice as
// many, for the same bytes).
template <typename T> constexpr int kColumnLoads = sizeof(T) == 2 ? 16 : 8;

// The sum of the `count` elements first, first + step, first + 2 step, ... in trips of kColumnLoads loads: whole
// trips as they are, the last partial one stopping at its end (`break`), both inside one loop, the form that keeps
// ptxas from placing adds between a trip's loads (read_plane_lanes.cuh). Added in a fixed order: reproducible.
template <typename T, bool kEvictFirst>
__device__ __forceinline__ acc_t<T> column_share(const T* first, int64_t step, int64_t count) {
  using A = acc_t<T>;
  constexpr int kLoads = kColumnLoads<T>;
  A acc = A(0);
  const auto load = [&](int i) { return load_once<kEvictFirst>(first + i * step); };
  const auto add = [&](T v) { acc += to_acc(v); };
  for (; count > 0; count -= kLoads, first += kLoads * step) {
    if (count >= kLoads) {
      load_trip<T, kLoads>(kLoads, load, add);
    } else {
      load_trip<T, kLoads>(static_cast<int>(count), load, add);
    }
  }
  return acc;
}

// The sums of up to kWideLoads channels c, c + stride, c + 2 stride, ... (`channels` of them) over the pixels
// [0, count) at `row`, row + pixel_step, ...: a pixel's loads issued together, then added.
template <typename T, int kWideLoads, bool kEvictFirst>
__device__ __forceinline__ void wide_columns_share(const T* row, int64_t pixel_step, int64_t count, int stride,
                                                   int channels, acc_t<T> (&acc)[kWideLoads]) {
#pragma unroll
  for (int j = 0; j < kWideLoads; ++j) acc[j] = acc_t<T>(0);
  for (; count > 0; --count, row += pixel_step) {
    int j = 0;
    load_trip<T, kWideLoads>(channels, [&](int i) { return load_once<kEvictFirst>(row + i * stride); },
                             [&](T v) { acc[j++] += to_acc(v); });
  }
}

// The vector walk's share of one slot (ChannelRowsArgs::period_vectors): acc[i] += element i of vectors[k],
// vectors[k + step], ... below `end`, in trips of kColumnLoads<float> loads issued together, then added in order.
template <typename T, bool kEvictFirst>
__device__ __forceinline__ void slot_share(const uint4* vectors, int64_t k, int64_t end, int64_t step,
                                           acc_t<T> (&acc)[16 / sizeof(T)]) {
  constexpr int kLoads = kColumnLoads<float>;
  for (; k < end; k += kLoads * step) {
    const int count = static_cast<int>(imin(kLoads, (end - k + step - 1) / step));
    load_trip<uint4, kLoads>(count, [&](int i) { return load_once<kEvictFirst>(vectors + k + i * step); },
                             [&](const uint4& v) {
#pragma unroll
                               for (int e = 0; e < 16 / static_cast<int>(sizeof(T)); ++e) acc[e] += vec_elem<T>(v, e);
                             });
  }
}

}  // namespace
}  // namespace fusedlse
