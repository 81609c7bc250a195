// padding's cut of a dimension on the device (kernels.h TapCutGeometry): which segment an input lies in, and the
// multiply-and-shift division (FastDivisor) the tap kernels and the cut broadcast use where a division per load or
// per store would cost more than the memory.
#pragma once

#include "../kernels.h"

#include <cstdint>

namespace fusedlse {
namespace {

// n / d for 0 <= n < 2^31 (FastDivisor).
__device__ __forceinline__ uint32_t divide(uint32_t n, FastDivisor d) { return (__umulhi(n, d.magic) + n) >> d.shift; }

// The segment of input i (0 <= i < extent) along a dimension cut as g describes (fusedlse::Cut::segment): the first
// g.head inputs one each, the middle one, the last g.tail one each.
template <typename I> __device__ __forceinline__ int32_t segment_of(const TapCutGeometry& g, I i, I extent) {
  if (i < static_cast<I>(g.head)) return static_cast<int32_t>(i);
  if (i >= extent - static_cast<I>(g.tail)) return g.segments - static_cast<int32_t>(extent - i);
  return g.head;
}

}  // namespace
}  // namespace fusedlse
