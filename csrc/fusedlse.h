// What every backend shares: argument validation and shape inference, defined once in fusedlse.cpp.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

namespace fusedlse {

// The sizes of one forward call, after validation.
struct ForwardShape {
  int64_t batch, in_channels, height, width;
  int64_t out_channels, kernel_h, kernel_w;
  double scale;  // 1 / (H_out * W_out): turns sum_HW(x) @ W.sum((2,3)) into the mean of the convolution
};

// Checks x [B, C_in, H, W], weight [C_in, C_out, kH, kW], conv_bias [C_out] or None, bias (C_out elements):
// ranks, sizes, floating dtypes that agree, one device. Raises a c10::Error naming the argument otherwise.
ForwardShape check_forward_args(const at::Tensor& x, const at::Tensor& weight,
                                const c10::optional<at::Tensor>& conv_bias, const at::Tensor& bias);

// x [B, C, H, W] of a floating dtype.
void check_sum_hw_args(const at::Tensor& x);

// sums [B, C_in], weight_sum [C_in, C_out], total_bias (C_out elements): float32 or float64, all alike.
void check_gemm_lse_args(const at::Tensor& sums, const at::Tensor& weight_sum, const at::Tensor& total_bias);

// float32 for float32/float16/bfloat16 inputs, float64 for float64.
at::ScalarType accumulation_type(at::ScalarType input);

}  // namespace fusedlse
