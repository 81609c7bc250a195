"""Analytic gradients of the fusedlse ops, registered with torch.library.register_autograd.

With s = sum_HW(x) [B, C_in], Ws = W.sum((2,3)) [C_in, C_out], z = scale * s @ Ws + conv_bias + bias and
out = 10 * logsumexp(z) [B, 1]:

    dz        = 10 * grad_out * softmax(z)             [B, C_out]
    grad_bias = grad_conv_bias = dz.sum(0)
    grad_W    = scale * s^T @ dz, the same for every (kh, kw) tap
    grad_x    = scale * dz @ Ws^T, the same for every (h, w) of a (b, c_in) row

so nothing here is larger than B x C_in x C_out except grad_x, which is written once in x's layout. The forward op
returns s alongside out, so the backward does not read x again. The formulas are plain differentiable torch ops on
saved tensors (s is an output of the op, so its own backward chains): double backward works.
"""
import torch

from .ops import accumulation_dtype, broadcast_hw, sum_hw
from .shape import mean_scale

# torch.ops.fusedlse.forward's arguments after x, weight, conv_bias, bias (none differentiable), with the schema's
# defaults: callers (opcheck, the dispatcher's normalisation) may leave trailing defaults out.
_SETTING_DEFAULTS = ((1, 1), (0, 0), (0, 0), (1, 1), 1)


def _layout_of(x: torch.Tensor) -> torch.memory_format:
    """The memory format grad_x is written in: x's own when it is channels_last, contiguous otherwise."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _broadcast_hw(grad_rows: torch.Tensor, shape, dtype, memory_format) -> torch.Tensor:
    """grad_rows [B, C] written to every (h, w) of a [B, C, H, W] tensor: one write pass, no GEMM."""
    return broadcast_hw(grad_rows.to(accumulation_dtype(dtype)), shape[2], shape[3], dtype, memory_format)


def _lse_grads(grad_out, sums, weight_sum, total_bias, scale):
    """dz [B, C_out], grad of sums [B, C_in] and grad of weight_sum [C_in, C_out] of 10 * logsumexp(z)."""
    logits = sums @ weight_sum * scale + total_bias.reshape(1, -1)
    dz = 10 * grad_out.to(logits.dtype).reshape(-1, 1) * torch.softmax(logits, dim=1)
    return dz, dz @ weight_sum.t() * scale, sums.t() @ dz * scale


# --- fusedlse::forward -----------------------------------------------------------------------------------------

def _forward_setup(ctx, inputs, output):
    x, weight, conv_bias, bias = inputs[:4]
    stride, _, output_padding, dilation, _ = tuple(inputs[4:]) + _SETTING_DEFAULTS[len(inputs) - 4:]
    _, sums = output
    ctx.save_for_backward(weight, conv_bias, bias, sums)
    ctx.x_shape, ctx.x_dtype, ctx.x_layout = x.shape, x.dtype, _layout_of(x)
    ctx.scale = mean_scale(x.shape, weight.shape, stride, output_padding, dilation)


def _forward_backward(ctx, grad_out, grad_sums):
    weight, conv_bias, bias, sums = ctx.saved_tensors
    acc = sums.dtype
    weight_sum = weight.to(acc).sum(dim=(2, 3))
    total_bias = bias.reshape(-1).to(acc)
    if conv_bias is not None:
        total_bias = total_bias + conv_bias.to(acc)
    dz, grad_s, grad_ws = _lse_grads(grad_out, sums, weight_sum, total_bias, ctx.scale)
    grad_x = grad_weight = grad_conv_bias = grad_bias = None
    if ctx.needs_input_grad[0]:
        if grad_sums is not None:
            grad_s = grad_s + grad_sums
        grad_x = _broadcast_hw(grad_s, ctx.x_shape, ctx.x_dtype, ctx.x_layout)
    if ctx.needs_input_grad[1]:
        grad_weight = grad_ws.to(weight.dtype)[:, :, None, None].expand(weight.shape).contiguous()
    dz_total = dz.sum(dim=0)
    if ctx.needs_input_grad[2]:
        grad_conv_bias = dz_total.to(conv_bias.dtype)
    if ctx.needs_input_grad[3]:
        if bias.numel() != dz_total.numel():  # one value for every channel
            dz_total = dz_total.sum()
        grad_bias = dz_total.reshape(bias.shape).to(bias.dtype)
    return (grad_x, grad_weight, grad_conv_bias, grad_bias) + (None,) * len(_SETTING_DEFAULTS)


# --- fusedlse::sum_hw ------------------------------------------------------------------------------------------

def _sum_hw_setup(ctx, inputs, output):
    (x,) = inputs
    ctx.x_shape, ctx.x_dtype, ctx.x_layout = x.shape, x.dtype, _layout_of(x)


def _sum_hw_backward(ctx, grad):
    return _broadcast_hw(grad, ctx.x_shape, ctx.x_dtype, ctx.x_layout)


# --- fusedlse::gemm_lse ----------------------------------------------------------------------------------------

def _gemm_lse_setup(ctx, inputs, output):
    sums, weight_sum, total_bias, scale = inputs
    ctx.save_for_backward(sums, weight_sum, total_bias)
    ctx.scale = scale


def _gemm_lse_backward(ctx, grad_out):
    sums, weight_sum, total_bias = ctx.saved_tensors
    dz, grad_sums, grad_weight_sum = _lse_grads(grad_out, sums, weight_sum, total_bias, ctx.scale)
    return grad_sums, grad_weight_sum, dz.sum(dim=0).reshape(total_bias.shape), None


# --- fusedlse::broadcast_hw ------------------------------------------------------------------------------------

def _broadcast_hw_setup(ctx, inputs, output):
    ctx.rows_dtype = inputs[0].dtype


def _broadcast_hw_backward(ctx, grad):
    # Each row was written to every (h, w): its gradient is the sum over them.
    return sum_hw(grad).to(ctx.rows_dtype), None, None, None, None


torch.library.register_autograd("fusedlse::forward", _forward_backward, setup_context=_forward_setup)
torch.library.register_autograd("fusedlse::sum_hw", _sum_hw_backward, setup_context=_sum_hw_setup)
torch.library.register_autograd("fusedlse::gemm_lse", _gemm_lse_backward, setup_context=_gemm_lse_setup)
torch.library.register_autograd("fusedlse::broadcast_hw", _broadcast_hw_backward, setup_context=_broadcast_hw_setup)
