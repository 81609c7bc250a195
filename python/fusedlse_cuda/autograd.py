"""Analytic gradients of the fusedlse ops, registered with torch.library.register_autograd.

With s = sum_HW(x) [B, C_in], Ws = W.sum((2,3)) [C_in, C_out], z = scale * s @ Ws + conv_bias + bias and
out = 10 * logsumexp(z) [B, 1]:

    dz        = 10 * grad_out * softmax(z)             [B, C_out]
    grad_bias = grad_conv_bias = dz.sum(0)
    grad_W    = scale * s^T @ dz, the same for every (kh, kw) tap
    grad_x    = scale * dz @ Ws^T, the same for every (h, w) of a (b, c_in) row

so nothing here is larger than B x C_in x C_out except grad_x, which is written once in x's layout. The forward op
returns s alongside out, so the backward does not read x again. With padding > 0, s is the per-tap sums
[B, C_in, kH, kW] (tap_sums) and W is not summed over its taps: the same formulas with C_in * kH * kW in place of
C_in, and grad_x written by broadcast_taps (constant inside each plane, per-band values near its border). With
groups, the GEMMs run per group (block-diagonal). The formulas are plain differentiable torch ops on saved tensors
(s is an output of the op, so its own backward chains): double backward works.
"""
import torch

from .ops import accumulation_dtype, broadcast_hw, broadcast_taps, sum_hw, tap_sums
from .shape import mean_scale

# torch.ops.fusedlse.forward's arguments after x, weight, conv_bias, bias (none differentiable): the settings and
# keep_sums, with the schema's defaults: callers (opcheck, the dispatcher's normalisation) may leave trailing defaults
# out.
_FORWARD_DEFAULTS = ((1, 1), (0, 0), (0, 0), (1, 1), 1, True)


def _layout_of(x: torch.Tensor) -> torch.memory_format:
    """The memory format grad_x is written in: x's own when it is channels_last, contiguous otherwise."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _broadcast_hw(grad_rows: torch.Tensor, shape, dtype, memory_format) -> torch.Tensor:
    """grad_rows [B, C] written to every (h, w) of a [B, C, H, W] tensor: one write pass, no GEMM."""
    return broadcast_hw(grad_rows.to(accumulation_dtype(dtype)), shape[2], shape[3], dtype, memory_format)


# --- fusedlse::forward -----------------------------------------------------------------------------------------

def _grouped_lse_grads(grad_out, taps, weight_taps, total_bias, scale, groups):
    """dz [B, C_out], grad of taps [B, C_in, T] and grad of weight_taps [C_in, C_out / groups, T] of
    10 * logsumexp(z), z = scale * (per group: taps @ weight_taps over (C_in of the group, T)) + total_bias."""
    batch, channels, taps_per_plane = taps.shape
    per_group_out = weight_taps.shape[1]
    per_group_in = channels // groups
    taps_g = taps.reshape(batch, groups, per_group_in * taps_per_plane).transpose(0, 1)  # [g, B, C_g * T]
    weight_g = weight_taps.reshape(groups, per_group_in, per_group_out, taps_per_plane).transpose(2, 3).reshape(
        groups, per_group_in * taps_per_plane, per_group_out)  # [g, C_g * T, C_out / g]
    logits = (torch.bmm(taps_g, weight_g) * scale).transpose(0, 1).reshape(batch, -1) + total_bias.reshape(1, -1)
    dz = 10 * grad_out.to(logits.dtype).reshape(-1, 1) * torch.softmax(logits, dim=1)
    dz_g = dz.reshape(batch, groups, per_group_out).transpose(0, 1)  # [g, B, C_out / g]
    grad_taps = (torch.bmm(dz_g, weight_g.transpose(1, 2)) * scale).transpose(0, 1).reshape(taps.shape)
    grad_weight = (torch.bmm(taps_g.transpose(1, 2), dz_g) * scale).reshape(
        groups, per_group_in, taps_per_plane, per_group_out).transpose(2, 3).reshape(weight_taps.shape)
    return dz, grad_taps, grad_weight


def _forward_setup(ctx, inputs, output):
    x, weight, conv_bias, bias = inputs[:4]
    stride, padding, output_padding, dilation, groups, keep_sums = (tuple(inputs[4:]) +
                                                                    _FORWARD_DEFAULTS[len(inputs) - 4:])
    if not keep_sums:
        raise RuntimeError("fusedlse::forward with keep_sums=False returns no sums for a backward, but an input "
                           "requires grad with grad mode on: call it with keep_sums=True (fusedlse_cuda.forward "
                           "chooses for you)")
    _, sums = output
    ctx.save_for_backward(weight, conv_bias, bias, sums)
    ctx.x_shape, ctx.x_dtype, ctx.x_layout = x.shape, x.dtype, _layout_of(x)
    ctx.settings = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation)
    ctx.groups = groups
    ctx.scale = mean_scale(x.shape, weight.shape, stride, output_padding, dilation, padding)


def _forward_backward(ctx, grad_out, grad_sums):
    weight, conv_bias, bias, sums = ctx.saved_tensors
    acc = sums.dtype
    per_tap = sums.dim() == 4  # padding > 0: the sums are per tap, and so is the weight
    weight_taps = weight.to(acc).flatten(2) if per_tap else weight.to(acc).sum(dim=(2, 3)).unsqueeze(2)
    total_bias = bias.reshape(-1).to(acc)
    if conv_bias is not None:
        total_bias = total_bias + conv_bias.to(acc)
    taps = sums.reshape(sums.shape[0], sums.shape[1], -1)
    dz, grad_taps, grad_wt = _grouped_lse_grads(grad_out, taps, weight_taps, total_bias, ctx.scale, ctx.groups)
    grad_x = grad_weight = grad_conv_bias = grad_bias = None
    if ctx.needs_input_grad[0]:
        grad_taps = grad_taps.reshape(sums.shape)
        if grad_sums is not None:
            grad_taps = grad_taps + grad_sums
        if per_tap:
            grad_x = broadcast_taps(grad_taps.to(accumulation_dtype(ctx.x_dtype)), ctx.x_shape[2], ctx.x_shape[3],
                                    ctx.x_dtype, memory_format=ctx.x_layout, **ctx.settings)
        else:
            grad_x = _broadcast_hw(grad_taps, ctx.x_shape, ctx.x_dtype, ctx.x_layout)
    if ctx.needs_input_grad[1]:
        grad_weight = grad_wt.to(weight.dtype).reshape(weight.shape[0], weight.shape[1], -1)
        grad_weight = grad_weight.reshape(weight.shape) if per_tap else grad_weight.expand(
            weight.shape[0], weight.shape[1], weight.shape[2] * weight.shape[3]).reshape(weight.shape)
    dz_total = dz.sum(dim=0)
    if ctx.needs_input_grad[2]:
        grad_conv_bias = dz_total.to(conv_bias.dtype)
    if ctx.needs_input_grad[3]:
        if bias.numel() != dz_total.numel():  # one value for every channel
            dz_total = dz_total.sum()
        grad_bias = dz_total.reshape(bias.shape).to(bias.dtype)
    return (grad_x, grad_weight, grad_conv_bias, grad_bias) + (None,) * len(_FORWARD_DEFAULTS)


# --- fusedlse::tap_sums and fusedlse::broadcast_taps: each other's adjoint ---------------------------------------

_TAP_DEFAULTS = ((1, 1), (0, 0), (0, 0), (1, 1))


def _tap_settings(values):
    stride, padding, output_padding, dilation = tuple(values) + _TAP_DEFAULTS[len(values):]
    return dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation)


def _tap_sums_setup(ctx, inputs, output):
    x, _ = inputs[:2]
    ctx.x_shape, ctx.x_dtype, ctx.x_layout = x.shape, x.dtype, _layout_of(x)
    ctx.settings = _tap_settings(inputs[2:])


def _tap_sums_backward(ctx, grad):
    grad_x = broadcast_taps(grad.to(accumulation_dtype(ctx.x_dtype)), ctx.x_shape[2], ctx.x_shape[3], ctx.x_dtype,
                            memory_format=ctx.x_layout, **ctx.settings)
    return (grad_x,) + (None,) * (1 + len(_TAP_DEFAULTS))


def _broadcast_taps_setup(ctx, inputs, output):
    taps = inputs[0]
    ctx.taps_dtype, ctx.kernel_size = taps.dtype, tuple(taps.shape[2:])
    ctx.settings = _tap_settings(inputs[4:8])


def _broadcast_taps_backward(ctx, grad):
    grad_taps = tap_sums(grad, ctx.kernel_size, **ctx.settings).to(ctx.taps_dtype)
    return (grad_taps,) + (None,) * 8


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
    # One tap per channel, one group: [B, C_in] x [C_in, C_out].
    dz, grad_sums, grad_weight_sum = _grouped_lse_grads(grad_out, sums.unsqueeze(2), weight_sum.unsqueeze(2),
                                                        total_bias, ctx.scale, 1)
    return grad_sums.squeeze(2), grad_weight_sum.squeeze(2), dz.sum(dim=0).reshape(total_bias.shape), None


# --- fusedlse::broadcast_hw ------------------------------------------------------------------------------------

def _broadcast_hw_setup(ctx, inputs, output):
    ctx.rows_dtype = inputs[0].dtype


def _broadcast_hw_backward(ctx, grad):
    # Each row was written to every (h, w): its gradient is the sum over them.
    return sum_hw(grad).to(ctx.rows_dtype), None, None, None, None


torch.library.register_autograd("fusedlse::forward", _forward_backward, setup_context=_forward_setup)
torch.library.register_autograd("fusedlse::sum_hw", _sum_hw_backward, setup_context=_sum_hw_setup)
torch.library.register_autograd("fusedlse::tap_sums", _tap_sums_backward, setup_context=_tap_sums_setup)
torch.library.register_autograd("fusedlse::broadcast_taps", _broadcast_taps_backward,
                                setup_context=_broadcast_taps_setup)
torch.library.register_autograd("fusedlse::gemm_lse", _gemm_lse_backward, setup_context=_gemm_lse_setup)
torch.library.register_autograd("fusedlse::broadcast_hw", _broadcast_hw_backward, setup_context=_broadcast_hw_setup)
