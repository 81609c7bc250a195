// Element and accumulation types, and the one switch over dtypes every entry point shares. Device code only (no
// torch); everything in these headers has internal linkage in each file that includes it.
#pragma once

#include "../kernels.h"
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

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

// What every epilogue adds to a column's scaled logit: bias + conv_bias in the accumulation type, summed in this one
// order everywhere (as the CPU path sums them). bias_sum takes a loaded bias and a pointer to the loaded conv_bias,
// null where there is none; column_bias loads column n's.
template <typename T> __device__ __forceinline__ acc_t<T> bias_sum(T bias, const T* conv_bias) {
  acc_t<T> total = to_acc(bias);
  if (conv_bias != nullptr) total += to_acc(*conv_bias);
  return total;
}
template <typename T, typename Index>
__device__ __forceinline__ acc_t<T> column_bias(const T* bias, int64_t bias_stride, const T* conv_bias, Index n) {
  acc_t<T> total = to_acc(bias[n * bias_stride]);
  if (conv_bias != nullptr) total += to_acc(conv_bias[n]);
  return total;
}

// v as bfloat16 pieces for three products on the tensor cores (kernels.h, Bf16PiecesArgs): high, v truncated (never
// rounded up to infinity; v - high is exact in float32), first and kept; low the rounding of v - high. A value that is
// not finite is first alone, rounded (a NaN stays one), low and kept zero, so it meets the other factor's value once,
// as in a float32 GEMM: no inf x 0. cuBLAS's pieces (split.cu) and the bfloat16 tile (gemm_lse.cuh) both cut so.
struct Bf16Cut {
  __nv_bfloat16 first, low, kept;
};
__device__ __forceinline__ Bf16Cut bf16_cut(float v) {
  const __nv_bfloat16 zero = __float2bfloat16_rn(0.f);
  if (!isfinite(v)) return {__float2bfloat16_rn(v), zero, zero};
  const float high_value = __uint_as_float(__float_as_uint(v) & 0xffff0000u);
  const __nv_bfloat16 high = __float2bfloat16_rn(high_value);
  return {high, __float2bfloat16_rn(v - high_value), high};
}

}  // namespace
}  // namespace fusedlse
