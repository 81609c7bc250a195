// CPU backend: the same semantics as the CUDA kernels, through ATen.

#include "../fusedlse.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>

namespace fusedlse {
namespace {

// Elements of 16-bit x that plane_sums converts to float32 at a time, into one buffer. ATen's x.sum(dtype=float32) of
// 16-bit x makes a float32 copy of the whole of x first, and its fresh pages cost more than the sum: [16, 64, 512, 512]
// bfloat16 took 310-340 ms that way, the whole forward 35 (contiguous) and 52 (channels-last) ms by pieces of 2^20
// elements, and ATen's sum in bfloat16 itself 9-16 / 33 ms (2 cores; docs/limits.md §86). One buffer for every piece:
// the allocator is asked once a call.
constexpr int64_t kPlaneSumPieceElements = int64_t{1} << 20;

// x [B, C, H, W] -> [B, C] in the accumulation type: the sum over H and W of each (b, c) plane.
at::Tensor plane_sums(const at::Tensor& x) {
  const at::ScalarType acc = accumulation_type(x.scalar_type());
  if (acc == x.scalar_type() || x.numel() <= kPlaneSumPieceElements) return x.sum({2, 3}, /*keepdim=*/false, acc);
  const int64_t batch = x.size(0), channels = x.size(1), height = x.size(2), width = x.size(3);
  at::Tensor out = at::empty({batch, channels}, x.options().dtype(acc));
  const int64_t batch_elements = channels * height * width;
  if (batch_elements <= kPlaneSumPieceElements) {
    // Whole batches a piece. (empty_like keeps channels-last x's strides: the copy is not a transpose.)
    const int64_t piece_batches = kPlaneSumPieceElements / batch_elements;
    const at::Tensor buffer = at::empty_like(x.narrow(0, 0, piece_batches), x.options().dtype(acc));
    for (int64_t b = 0; b < batch; b += piece_batches) {
      const int64_t count = std::min(piece_batches, batch - b);
      at::Tensor piece_out = out.narrow(0, b, count);
      at::sum_out(piece_out, buffer.narrow(0, 0, count).copy_(x.narrow(0, b, count)), {2, 3});
    }
    return out;
  }
  // A batch at a time, by pieces of whole rows of every channel (in channels-last x, one block of memory); the pieces'
  // sums added in float64.
  const int64_t piece_rows = std::clamp<int64_t>(kPlaneSumPieceElements / (channels * width), 1, height);
  const at::Tensor buffer = at::empty_like(x[0].narrow(1, 0, piece_rows), x.options().dtype(acc));
  for (int64_t b = 0; b < batch; ++b) {
    at::Tensor total = at::zeros({channels}, x.options().dtype(at::kDouble));
    for (int64_t row = 0; row < height; row += piece_rows) {
      const int64_t count = std::min(piece_rows, height - row);
      total += buffer.narrow(1, 0, count).copy_(x[b].narrow(1, row, count)).sum({1, 2});
    }
    out[b].copy_(total);
  }
  return out;
}

at::Tensor sum_hw_cpu(const at::Tensor& x) {
  check_sum_hw_args(x);
  const NoAutocast no_autocast;
  return plane_sums(x);
}

// products [B, C_out] (the GEMM's, before its scale) in the accumulation type -> [B, 1] in that type.
at::Tensor bias_lse(const at::Tensor& products, const at::Tensor& total_bias, double scale) {
  const at::Tensor logits = products * scale + total_bias.reshape({1, -1});
  return at::logsumexp(logits, {1}, /*keepdim=*/true) * 10;
}

// rows [B, groups * depth] x blocks [groups, depth, C_out / groups] -> [B, C_out]: each group's rows by its own block
// of the weight. The dense block-diagonal weight's zeros times an infinite sum of another group would make every
// logit NaN, where the model keeps the other groups' logits finite (+inf in one channel: +inf, not NaN).
at::Tensor block_diagonal_matmul(const at::Tensor& rows, const at::Tensor& blocks) {
  const int64_t groups = blocks.size(0);
  if (groups == 1) return at::matmul(rows, blocks[0]);
  const int64_t batch = rows.size(0);
  const at::Tensor group_rows = rows.reshape({batch, groups, blocks.size(1)}).transpose(0, 1);  // [groups, B, depth]
  return at::bmm(group_rows, blocks).transpose(0, 1).reshape({batch, -1});
}

// The diagonal blocks [groups, depth / groups, C_out / groups] of a block-diagonal weight_rows [depth, C_out] (rows
// channel-major, zero between groups: CroppedGemm::weight_rows).
at::Tensor diagonal_blocks(const at::Tensor& weight_rows, int64_t groups) {
  const int64_t depth = weight_rows.size(0), c_out = weight_rows.size(1);
  return weight_rows.view({groups, depth / groups, groups, c_out / groups}).diagonal(0, 0, 2).permute({2, 0, 1});
}

at::Tensor gemm_lse_cpu(const at::Tensor& sums, const at::Tensor& weight_sum, const at::Tensor& total_bias,
                        double scale) {
  check_gemm_lse_args(sums, weight_sum, total_bias);
  const NoAutocast no_autocast;
  return bias_lse(at::matmul(sums, weight_sum), total_bias, scale);
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
      const at::Tensor blocks = diagonal_blocks(gemm.weight_rows, s.conv.groups);
      out = bias_lse(block_diagonal_matmul(gemm.x_rows, blocks), total_bias, s.scale);
    }
  } else {
    sums = plane_sums(x);
    if (s.batch > 0) {
      // The grouped weight's W.sum [C_in, C_out / groups] is its groups' blocks, one after another.
      const int64_t groups = s.conv.groups;
      const at::Tensor blocks =
          weight.sum({2, 3}, /*keepdim=*/false, acc).reshape({groups, s.in_channels / groups, s.out_channels / groups});
      out = bias_lse(block_diagonal_matmul(sums, blocks), total_bias, s.scale);
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
