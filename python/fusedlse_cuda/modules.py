"""ModelNew: the drop-in nn.Module for KernelBench level 2 problem 42, running fusedlse's one-pass forward."""
from typing import Optional

import torch
from torch import Tensor, nn

from . import ops, shape
from .reference import Model


class ModelNew(nn.Module):
    """The reference ``Model`` with the fused forward.

    Same constructor, parameter names (``conv_transpose.weight``, ``conv_transpose.bias``, ``bias``) and
    initialisation as :class:`fusedlse_cuda.reference.Model`: built right after the same ``torch.manual_seed``,
    both hold equal parameters, and their state dicts load into each other.

    Keyword arguments are nn.ConvTranspose2d's, as ``Model`` passes them on: the settings (int or pair), every value
    it accepts, all exact, ones it would refuse raising an error naming the setting, here rather than at the first
    call; ``bias=False`` (no ``conv_transpose.bias``); ``padding_mode`` (``"zeros"``, the only one it accepts);
    ``device`` and ``dtype`` of ``conv_transpose``'s parameters. ``bias`` (the parameter) is drawn as ``Model``
    draws it, on the CPU in the default dtype, whatever ``device`` and ``dtype`` say.

    Any ``bias_shape`` computes what ``Model`` computes. One value per output channel (``(C_out, 1, 1)``, the
    problem's, ``(1, C_out, 1, 1)`` or a single value) runs the fused op. Other shapes, which ``Model`` broadcasts
    along B, H or W (``(C_out,)`` makes its logsumexp run over a ``[B, C_out, 1, C_out]`` tensor), read x with
    :func:`fusedlse_cuda.sum_hw` and finish with ``Model``'s own tail in torch ops on the ``[B, C_out]`` means.

    Under ``torch.autocast``, see :meth:`forward`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, bias_shape, *, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros",
                 device=None, dtype=None):
        super().__init__()
        ops.check_conv_settings(stride, padding, output_padding, dilation, groups)
        # Built exactly as Model builds them, in the same order, so the same seed gives the same parameters.
        self.conv_transpose = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride=stride,
                                                 padding=padding, output_padding=output_padding, groups=groups,
                                                 bias=bias, dilation=dilation, padding_mode=padding_mode,
                                                 device=device, dtype=dtype)
        self.bias = nn.Parameter(torch.randn(bias_shape))

    @classmethod
    def from_model(cls, model: Model) -> "ModelNew":
        """A ModelNew that shares ``model``'s parameters (its ConvTranspose2d module and its bias): training either
        one trains both."""
        conv = model.conv_transpose
        if conv.padding_mode != "zeros":
            raise ValueError(f"from_model: conv_transpose.padding_mode must be 'zeros', got {conv.padding_mode!r}")
        ops.check_conv_settings(conv.stride, conv.padding, conv.output_padding, conv.dilation, conv.groups)
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.conv_transpose = conv
        new.bias = model.bias
        return new

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C_in, H, W] -> [B, 1]``.

        Outside autocast: all in x's dtype, which must be the parameters' (as for the reference, whose
        convolution rejects mixed dtypes). Under ``torch.autocast`` on x's device type, the reference runs its
        convolution in the autocast dtype (float64 x in float64) and adds its bias, which promotes: the rest runs
        in float32 for a float32 bias of one dimension or more, and stays in the autocast dtype for a 0-dim one.
        ModelNew returns the reference's dtype, but does not cast x down: a float32 x is read as is and everything
        is computed in float32 (a cast pass would cost more time than it saves, and the result is more accurate);
        a float16/bfloat16 x is read at 2 bytes per element with the parameters cast to its dtype, summed in
        float32, and the output rounded to x's dtype before it takes the reference's.
        """
        conv = self.conv_transpose
        weight, conv_bias, bias = conv.weight, conv.bias, self.bias
        autocast = x.device.type != "meta" and torch.is_autocast_enabled(x.device.type)  # meta has no autocast
        if autocast and x.dtype != weight.dtype:
            weight, bias = weight.to(x.dtype), bias.to(x.dtype)
            conv_bias = None if conv_bias is None else conv_bias.to(x.dtype)
        if shape.bias_is_per_channel(bias.shape, conv.out_channels):
            out = _fused(x, weight, conv_bias, bias, conv)
        else:
            out = _broadcast_bias(x, weight, conv_bias, bias, conv)
        if not autocast:
            return out
        conv_dtype = x.dtype if x.dtype == torch.float64 else torch.get_autocast_dtype(x.device.type)
        # The reference's `+ self.bias`: a 0-dim tensor does not promote one with dimensions of its own category.
        model_dtype = conv_dtype if self.bias.dim() == 0 else torch.promote_types(conv_dtype, self.bias.dtype)
        return out.to(model_dtype)


def _fused(x: Tensor, weight: Tensor, conv_bias: Optional[Tensor], bias: Tensor, conv: nn.ConvTranspose2d) -> Tensor:
    return ops.forward(x, weight, conv_bias, bias, stride=conv.stride, padding=conv.padding,
                       output_padding=conv.output_padding, dilation=conv.dilation, groups=conv.groups)


def _broadcast_bias(x: Tensor, weight: Tensor, conv_bias: Optional[Tensor], bias: Tensor,
                    conv: nn.ConvTranspose2d) -> Tensor:
    """Model's forward for a bias that is not one value per channel: the means of the transposed convolution
    [B, C_out, 1, 1] from one read of x (the identity), then Model's tail, broadcasting included, in the
    accumulation dtype; the result in x's dtype."""
    settings = ops.conv_settings(conv.stride, conv.padding, conv.output_padding, conv.dilation, conv.groups)
    if not torch.compiler.is_compiling():  # the op's checks and messages (a traced graph was checked when traced)
        channel_bias = torch.empty(conv.out_channels, 1, 1, dtype=x.dtype, device="meta")
        torch.ops.fusedlse.check_forward.default(ops.meta_twin(x), ops.meta_twin(weight), ops.meta_twin(conv_bias),
                                                 channel_bias, **settings)
        ops.check_same_device("x", x, weight=weight, conv_bias=conv_bias, bias=bias)
    scale = shape.mean_scale(x.shape, weight.shape, settings["stride"], settings["output_padding"],
                             settings["dilation"], settings["padding"])
    acc = ops.accumulation_dtype(x.dtype)
    if any(p > 0 for p in settings["padding"]):  # per-tap sums and the weight's taps (ops.forward's docstring)
        sums = ops.tap_sums(x, tuple(weight.shape[2:]), stride=settings["stride"], padding=settings["padding"],
                            output_padding=settings["output_padding"], dilation=settings["dilation"]).flatten(1)
        rows = weight.to(acc).permute(0, 2, 3, 1).reshape(-1, weight.shape[1])
    else:
        sums, rows = ops.sum_hw(x), weight.sum(dim=(2, 3), dtype=acc)
    means = sums @ ops.ungrouped_rows(rows, settings["groups"]) * scale
    if conv_bias is not None:
        means = means + conv_bias.to(acc)
    y = means[:, :, None, None] + bias.to(acc)
    return (10.0 * torch.logsumexp(y, dim=1, keepdim=True).sum(dim=(2, 3))).to(x.dtype)
