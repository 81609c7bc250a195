"""The model fusedlse replaces, and the algebraic shortcut it computes, in plain PyTorch (for tests and benchmarks)."""
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from .shape import conv_settings as parse_conv_settings, output_size, uncropped_size


class Model(nn.Module):
    """KernelBench level 2 problem 42: ConvTranspose2d, global average pool, bias, logsumexp, sum, x10."""

    def __init__(self, in_channels, out_channels, kernel_size, bias_shape, **conv_settings):
        """conv_settings: nn.ConvTranspose2d's keyword arguments (stride, padding, ...); KernelBench uses none."""
        super().__init__()
        self.conv_transpose = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, **conv_settings)
        self.bias = nn.Parameter(torch.randn(bias_shape))

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_transpose(x)
        x = torch.mean(x, dim=(2, 3), keepdim=True)
        x = x + self.bias
        x = torch.logsumexp(x, dim=1, keepdim=True)
        x = torch.sum(x, dim=(2, 3))
        return x * 10.0


def model_forward(x: Tensor, weight: Tensor, conv_bias: Optional[Tensor], bias: Tensor, **conv_settings) -> Tensor:
    """The model's forward with explicit parameters (the real transposed convolution; conv_settings are
    F.conv_transpose2d's stride, padding, output_padding, dilation, groups)."""
    y = torch.nn.functional.conv_transpose2d(x, weight, conv_bias, **conv_settings)
    y = y.mean(dim=(2, 3), keepdim=True) + bias  # Model's broadcast, whatever bias's shape
    return 10.0 * torch.logsumexp(y, dim=1, keepdim=True).sum(dim=(2, 3))


def truth(x: Tensor, weight: Tensor, conv_bias: Optional[Tensor], bias: Tensor, **conv_settings) -> Tensor:
    """The real model run in float64 on the CPU: what every path is checked against."""
    f64 = lambda t: None if t is None else t.detach().to("cpu", torch.float64)  # noqa: E731
    return model_forward(f64(x), f64(weight), f64(conv_bias), f64(bias), **conv_settings)


def shortcut(x: Tensor, weight: Tensor, conv_bias: Optional[Tensor], bias: Tensor) -> Tensor:
    """mean_HW(convT(x)) = sum_HW(x) @ W.sum((2,3)) / (H_out*W_out) + conv_bias, then bias, logsumexp, x10."""
    kh, kw = weight.shape[2], weight.shape[3]
    area = (x.shape[2] + kh - 1) * (x.shape[3] + kw - 1)
    logits = x.sum(dim=(2, 3)) @ weight.sum(dim=(2, 3)) / area + bias.reshape(1, -1)
    if conv_bias is not None:
        logits = logits + conv_bias
    return 10.0 * torch.logsumexp(logits, dim=1, keepdim=True)


def kept_inputs(size: int, kernel: int, extent: int, stride: int, padding: int, dilation: int):
    """Per tap t of one dimension, the range [first, end) of the `size` inputs i whose product with t survives
    nn.ConvTranspose2d's crop: padding <= i * stride + t * dilation < extent - padding, extent the uncropped output's
    size (shape.uncropped_size). Empty ranges have first == end."""
    ranges = []
    for tap in range(kernel):
        first = max(0, -((tap * dilation - padding) // stride))  # ceil((padding - tap * dilation) / stride)
        end = min(size, -((tap * dilation + padding - extent) // stride))  # ceil((extent - padding - ...) / stride)
        ranges.append((first, max(first, end)))
    return ranges


def kept_ranges(height: int, width: int, kernel: Sequence[int], settings: dict):
    """kept_inputs along H and along W of an x of height x width under a ``kernel`` (kH, kW) and ``settings``
    (shape.conv_settings' stride, padding, output_padding, dilation): (per tap row, per tap column) ranges."""
    stride, dilation = settings["stride"], settings["dilation"]
    extents = uncropped_size(height, width, kernel[0], kernel[1], stride, settings["output_padding"], dilation)
    return tuple(kept_inputs(size, taps, extent, stride[d], settings["padding"][d], dilation[d])
                 for d, (size, taps, extent) in enumerate(zip((height, width), kernel, extents)))


def tap_shortcut(x: Tensor, weight: Tensor, conv_bias: Optional[Tensor], bias: Tensor, **conv_settings) -> Tensor:
    """The shortcut for every nn.ConvTranspose2d setting (F.conv_transpose2d's stride, padding, output_padding,
    dilation, groups), in plain PyTorch: per (b, c) plane and tap the sum of the inputs the tap keeps (a rectangle
    of x: kept_inputs along H times along W; with padding 0 the whole plane), then the GEMM over (channel, tap) of
    each group, / (H_out * W_out), the biases, logsumexp, x10. kW passes over x and small work after them: the
    benchmarks' plain-torch rival where padding or groups apply, and in float64 their check on large x."""
    settings = parse_conv_settings(**conv_settings)
    groups = settings["groups"]
    batch, channels, height, width = x.shape
    kh, kw = weight.shape[2], weight.shape[3]
    stride, dilation = settings["stride"], settings["dilation"]
    rows, cols = kept_ranges(height, width, (kh, kw), settings)
    column_sums = torch.stack([x[..., first:end].sum(dim=-1) for first, end in cols], dim=-1)  # [B, C, H, kW]
    taps = torch.stack([column_sums[:, :, first:end].sum(dim=2) for first, end in rows], dim=2)  # [B, C, kH, kW]
    per_group_out = weight.shape[1]
    logits = torch.einsum("bgct,gcnt->bgn", taps.reshape(batch, groups, channels // groups, kh * kw),
                          weight.reshape(groups, channels // groups, per_group_out, kh * kw))
    out_h, out_w = output_size(height, width, kh, kw, stride, settings["output_padding"], dilation,
                               settings["padding"])
    logits = logits.reshape(batch, groups * per_group_out) / (out_h * out_w) + bias.reshape(1, -1)
    if conv_bias is not None:
        logits = logits + conv_bias
    return 10.0 * torch.logsumexp(logits, dim=1, keepdim=True)
