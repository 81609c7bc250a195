// Device code both kernel files share: accumulation types, the one switch over dtypes, warp sums and the online
// logsumexp. Only CUDA headers; everything here has internal linkage in each file that includes it.
#pragma once

#include "fused_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>

namespace fusedlse {
namespace {

template <typename T> struct AccOf { using type = float; };
template <> struct AccOf<double> { using type = double; };
template <typename T> using acc_t = typename AccOf<T>::type;

// f(T{}) for the element type that `kind` names (the one switch over dtypes every entry point shares); `fallback`
// for a value outside the enum.
template <typename R, typename F>
R with_element_type(ScalarKind kind, R fallback, F&& f) {
  switch (kind) {
    case ScalarKind::kFloat: return f(float{});
    case ScalarKind::kHalf: return f(__half{});
    case ScalarKind::kBFloat16: return f(__nv_bfloat16{});
    case ScalarKind::kDouble: return f(double{});
  }
  return fallback;
}

__device__ __forceinline__ float to_acc(float v) { return v; }
__device__ __forceinline__ double to_acc(double v) { return v; }
__device__ __forceinline__ float to_acc(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_acc(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_acc(acc_t<T> v);
template <> __device__ __forceinline__ float from_acc<float>(float v) { return v; }
template <> __device__ __forceinline__ double from_acc<double>(double v) { return v; }
template <> __device__ __forceinline__ __half from_acc<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

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
