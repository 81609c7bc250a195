"""ModelNew: the drop-in nn.Module for KernelBench level 2 problem 42, running fusedlse's one-pass forward."""
from typing import Optional

import torch
from torch import Tensor, nn

from . import ops
from .reference import Model


class ModelNew(nn.Module):
    """The reference ``Model`` with the fused forward.

    Same constructor, parameter names (``conv_transpose.weight``, ``conv_transpose.bias``, ``bias``) and
    initialisation as :class:`fusedlse_cuda.reference.Model`: built right after the same ``torch.manual_seed``,
    both hold equal parameters, and their state dicts load into each other.

    Keyword arguments are nn.ConvTranspose2d's (int or pair). stride, output_padding and dilation are exact;
    padding > 0 and groups > 1 raise an error naming the setting, here rather than at the first call.

    Under ``torch.autocast``, see :meth:`forward`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, bias_shape, *, stride=1, padding=0,
                 output_padding=0, groups: int = 1, dilation=1):
        super().__init__()
        ops.check_conv_settings(stride, padding, output_padding, dilation, groups)
        # Built exactly as Model builds them, in the same order, so the same seed gives the same parameters.
        self.conv_transpose = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride=stride,
                                                 padding=padding, output_padding=output_padding, groups=groups,
                                                 dilation=dilation)
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
        convolution in the autocast dtype and the rest in float32 (the float32 bias promotes), returning float32.
        ModelNew returns float32 too, but does not cast x down: a float32 x is read as is and everything is
        computed in float32 (a cast pass would cost more time than it saves, and the result is more accurate);
        a float16/bfloat16 x is read at 2 bytes per element with the parameters cast to its dtype, summed in
        float32, and the output rounded to x's dtype before it is widened to float32.
        """
        conv = self.conv_transpose
        weight, conv_bias, bias = conv.weight, conv.bias, self.bias
        autocast = torch.is_autocast_enabled(x.device.type)
        if autocast and x.dtype != weight.dtype:
            weight, bias = weight.to(x.dtype), bias.to(x.dtype)
            conv_bias = None if conv_bias is None else conv_bias.to(x.dtype)
        out = _fused(x, weight, conv_bias, bias, conv)
        return out.float() if autocast and out.dtype in (torch.float16, torch.bfloat16) else out


def _fused(x: Tensor, weight: Tensor, conv_bias: Optional[Tensor], bias: Tensor, conv: nn.ConvTranspose2d) -> Tensor:
    return ops.forward(x, weight, conv_bias, bias, stride=conv.stride, padding=conv.padding,
                       output_padding=conv.output_padding, dilation=conv.dilation, groups=conv.groups)
