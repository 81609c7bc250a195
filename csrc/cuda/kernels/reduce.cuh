// Reductions across lanes: warp sums and the online logsumexp with torch.logsumexp's semantics.
#pragma once

#include "dtype.cuh"
#include <cmath>

namespace fusedlse {
namespace {

template <typename A> __device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Logsumexp, online.
// torch.logsumexp's semantics: NaN if any value is NaN, else +inf if any is +inf, -inf if all are -inf.
template <typename A> struct Lse {
  A max_value, scaled_sum;  // logsumexp = max_value + log(scaled_sum); scaled_sum == 0 means empty (or all -inf)
};

// exp(v - max) for v <= max, with exp(0) where they are equal: +inf - +inf would be NaN.
template <typename A> __device__ __forceinline__ A exp_below(A v, A max) { return exp(v == max ? A(0) : v - max); }

template <typename A> __device__ __forceinline__ void lse_push(Lse<A>& s, A v) {
  if (v > s.max_value) {
    s.scaled_sum = s.scaled_sum * exp(s.max_value - v) + A(1);  // max_value is finite or -inf here
    s.max_value = v;
  } else if (v != -INFINITY) {  // NaN lands here and poisons the sum, as it should
    s.scaled_sum += exp_below(v, s.max_value);
  }
}

template <typename A> __device__ __forceinline__ Lse<A> lse_merge(Lse<A> p, Lse<A> q) {
  if (q.scaled_sum == A(0)) return p;
  if (p.scaled_sum == A(0)) return q;
  const A m = p.max_value > q.max_value ? p.max_value : q.max_value;
  return {m, p.scaled_sum * exp_below(p.max_value, m) + q.scaled_sum * exp_below(q.max_value, m)};
}

template <typename A> __device__ __forceinline__ Lse<A> warp_lse(Lse<A> s) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const Lse<A> other{__shfl_xor_sync(0xffffffffu, s.max_value, offset),
                       __shfl_xor_sync(0xffffffffu, s.scaled_sum, offset)};
    s = lse_merge(s, other);
  }
  return s;
}

}  // namespace
}  // namespace fusedlse
