// Reading channels-last x (XLayout::kChannelsLast): a run of positions of one group of channels of one batch.
#pragma once

#include "read_planes.cuh"

namespace fusedlse {
namespace {

// Adds kVec channels' values from the 16 bytes (kVec > 1) or the one element (kVec == 1) at p.
template <typename T, int kVec, bool kEvictFirst>
__device__ __forceinline__ void accumulate_position(const T* p, acc_t<T> (&acc)[kVec]) {
  if constexpr (kVec > 1) {
    const uint4 v = load_once<kEvictFirst>(reinterpret_cast<const uint4*>(p));
#pragma unroll
    for (int k = 0; k < kVec; ++k) acc[k] += vec_elem<T>(v, k);
  } else {
    acc[0] += to_acc(load_once<kEvictFirst>(p));
  }
}

// Channels-last split tile: positions [split * chunk, ...) of one channel group of one batch, an eighth per warp.
// A warp's lanes form a [position, channel] grid with kVec channels per lane; the block adds its lanes' values per
// channel in a fixed order and writes one partial per channel.
template <typename T, int kVec>
__device__ __forceinline__ void read_channels_last_item(const FusedArgs& a, int64_t item, acc_t<T>* reduce) {
  using A = acc_t<T>;
  const LaunchPlan& plan = a.plan;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const ItemPos pos = item_position(a, item);
  const int64_t b = pos.b, split = pos.split;
  const int64_t c_begin = pos.group * plan.group_channels;
  const int64_t width = imin(plan.group_channels, a.channels - c_begin);
  const int channel_lanes = static_cast<int>(plan.group_channels / kVec);
  const int position_lanes = 32 / channel_lanes;
  const int channel_lane = lane % channel_lanes, position_lane = lane / channel_lanes;
  const int64_t begin = split * plan.chunk, end = imin(begin + plan.chunk, a.plane);
  const int64_t piece = (end - begin + kWarpsPerBlock - 1) / kWarpsPerBlock;
  const int64_t p0 = imin(begin + warp * piece, end), p1 = imin(p0 + piece, end);
  A acc[kVec];
#pragma unroll
  for (int k = 0; k < kVec; ++k) acc[k] = A(0);
  const int64_t c = channel_lane * kVec;
  const bool active = position_lane < position_lanes;
  if (active && c < width && p0 + position_lane < p1) {
    const int64_t step = position_lanes * a.stride_p;
    const T* p = static_cast<const T*>(a.x) + b * a.stride_b + c_begin + c + (p0 + position_lane) * a.stride_p;
    int64_t left = (p1 - p0 - position_lane + position_lanes - 1) / position_lanes;
    // One trip: the next `count` (<= kLoadsInFlight) positions' loads issued together, in pairs of partial sums.
    auto trip = [&](int64_t count, auto evict_first) {
      A part[kLoadsInFlight / 2][kVec];
#pragma unroll
      for (int u = 0; u < kLoadsInFlight / 2; ++u)
#pragma unroll
        for (int k = 0; k < kVec; ++k) part[u][k] = A(0);
#pragma unroll
      for (int u = 0; u < kLoadsInFlight; ++u)
        if (u < count) accumulate_position<T, kVec, decltype(evict_first)::value>(p + u * step, part[u / 2]);
#pragma unroll
      for (int u = 0; u < kLoadsInFlight / 2; ++u)
#pragma unroll
        for (int k = 0; k < kVec; ++k) acc[k] += part[u][k];
    };
    with_evict_first(plan.evict_first, [&](auto evict_first) {
      for (; left >= kLoadsInFlight; left -= kLoadsInFlight, p += kLoadsInFlight * step) {
        trip(kLoadsInFlight, evict_first);
      }
      trip(left, evict_first);  // fewer than kLoadsInFlight positions left: predicated, not a round trip per load
    });
  }
  if (active) {
#pragma unroll
    for (int k = 0; k < kVec; ++k) reduce[(warp * 32 + lane) * kVec + k] = acc[k];
  }
  __syncthreads();
  A* partials = static_cast<A*>(a.partials);
  for (int64_t t = threadIdx.x; t < width; t += kBlockThreads) {
    A s = A(0);
    for (int w = 0; w < kWarpsPerBlock; ++w)
      for (int l = 0; l < position_lanes; ++l) s += reduce[(w * 32 + l * channel_lanes) * kVec + t];
    partials[(b * a.channels + c_begin + t) * plan.splits + split] = s;
  }
}

}  // namespace
}  // namespace fusedlse
