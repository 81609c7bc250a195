// CPU backend: the same semantics as the CUDA kernels, through ATen.

#include "../fusedlse.h"

#include <ATen/ATen.h>
#include <torch/library.h>

namespace fusedlse {
namespace {

at::Tensor sum_hw_cpu(const at::Tensor& x) {
  check_sum_hw_args(x);
  const NoAutocast no_autocast;
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
  const NoAutocast no_autocast;
  return gemm_lse_impl(sums, weight_sum, total_bias, scale);
}

std::tuple<at::Tensor, at::Tensor> forward_cpu(const at::Tensor& x, const at::Tensor& weight,
                                               const c10::optional<at::Tensor>& conv_bias, const at::Tensor& bias,
                                               at::IntArrayRef stride, at::IntArrayRef padding,
                                               at::IntArrayRef output_padding, at::IntArrayRef dilation,
                                               int64_t groups, bool keep_sums) {
  const ForwardShape s =
      check_forward_args(x, weight, conv_bias, bias, stride, padding, output_padding, dilation, groups);
  const at::ScalarType acc = accumulation_type(x.scalar_type());
  const NoAutocast no_autocast;
  at::Tensor total_bias = bias.reshape({-1}).to(acc);
  if (conv_bias.has_value()) total_bias = total_bias + conv_bias->to(acc);
  at::Tensor out, sums;
  if (s.conv.crops()) {
    // padding > 0: the GEMM over cells or taps (fusedlse.h); the per-tap sums are the op's second output.
    const at::Tensor cells = cell_sums(x, s);
    const bool over_cells = cropped_gemm_over_cells(s, /*cell_weight_one_pass=*/false);  // ATen's passes
    if (keep_sums || !over_cells) sums = tap_sums_of_cells(cells, s);
    if (s.batch > 0) {
      const CroppedGemm gemm = cropped_gemm_operands(over_cells, cells, /*cells_kept_only=*/false, sums, weight, s);
      out = gemm_lse_impl(gemm.x_rows, gemm.weight_rows, total_bias, s.scale);
    }
  } else {
    sums = x.sum({2, 3}, /*keepdim=*/false, acc);
    if (s.batch > 0) {
      const at::Tensor weight_sum = ungrouped_weight(weight, s.conv.groups).sum({2, 3}, /*keepdim=*/false, acc);
      out = gemm_lse_impl(sums, weight_sum, total_bias, s.scale);
    }
  }
  out = s.batch > 0 ? out.to(x.scalar_type()) : at::empty({0, 1}, x.options());
  return {out, keep_sums ? sums : no_sums(x)};
}

at::Tensor broadcast_hw_cpu(const at::Tensor& rows, int64_t height, int64_t width, at::ScalarType dtype,
                            bool channels_last) {
  at::Tensor out = empty_broadcast_hw(rows, height, width, dtype, channels_last);
  const NoAutocast no_autocast;
  return out.copy_(rows.to(dtype).view({rows.size(0), rows.size(1), 1, 1}).expand(out.sizes()));
}

}  // namespace

TORCH_LIBRARY_IMPL(fusedlse, CPU, m) {
  m.impl("forward", &forward_cpu);
  m.impl("sum_hw", &sum_hw_cpu);
  m.impl("gemm_lse", &gemm_lse_cpu);
  m.impl("broadcast_hw", &broadcast_hw_cpu);
  m.impl("explain", [](const at::Tensor& x, const at::Tensor& weight, at::IntArrayRef stride, at::IntArrayRef padding,
                       at::IntArrayRef output_padding, at::IntArrayRef dilation, int64_t groups) -> std::string {
    check_shape_args(x, weight, stride, padding, output_padding, dilation, groups);
    return "{\"strategy\": \"cpu\", \"why\": \"CPU tensors: x.sum, matmul and logsumexp through ATen\"}";
  });
}

}  // namespace fusedlse
