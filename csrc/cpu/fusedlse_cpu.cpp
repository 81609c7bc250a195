// CPU backend: the same semantics as the CUDA kernels, through ATen.

#include "../fusedlse.h"

#include <ATen/ATen.h>
#include <torch/library.h>

namespace fusedlse {
namespace {

at::Tensor sum_hw_cpu(const at::Tensor& x) {
  check_sum_hw_args(x);
  return x.sum({2, 3}, /*keepdim=*/false, accumulation_type(x.scalar_type()));
}

// sums [B, C_in] and weight_sum [C_in, C_out] in the accumulation type -> [B, 1] in that type.
at::Tensor gemm_lse_impl(const at::Tensor& sums, const at::Tensor& weight_sum, const at::Tensor& total_bias,
                         double scale) {
  const at::Tensor logits = at::matmul(sums, weight_sum) * scale + total_bias.reshape({1, -1});
  return at::logsumexp(logits, {1}, /*keepdim=*/true) * 10;
}

at::Tensor gemm_lse_cpu(const at::Tensor& sums, const at::Tensor& weight_sum, const at::Tensor& total_bias,
                        double scale) {
  check_gemm_lse_args(sums, weight_sum, total_bias);
  return gemm_lse_impl(sums, weight_sum, total_bias, scale);
}

at::Tensor forward_cpu(const at::Tensor& x, const at::Tensor& weight, const c10::optional<at::Tensor>& conv_bias,
                       const at::Tensor& bias) {
  const ForwardShape s = check_forward_args(x, weight, conv_bias, bias);
  const at::ScalarType acc = accumulation_type(x.scalar_type());
  if (s.batch == 0) return at::empty({0, 1}, x.options());
  const at::Tensor sums = x.sum({2, 3}, /*keepdim=*/false, acc);
  const at::Tensor weight_sum = weight.sum({2, 3}, /*keepdim=*/false, acc);
  at::Tensor total_bias = bias.reshape({-1}).to(acc);
  if (conv_bias.has_value()) total_bias = total_bias + conv_bias->to(acc);
  return gemm_lse_impl(sums, weight_sum, total_bias, s.scale).to(x.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(fusedlse, CPU, m) {
  m.impl("forward", &forward_cpu);
  m.impl("sum_hw", &sum_hw_cpu);
  m.impl("gemm_lse", &gemm_lse_cpu);
}

}  // namespace fusedlse
