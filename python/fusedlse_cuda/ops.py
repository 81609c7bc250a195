"""Python entry points of the fusedlse ops (schemas in csrc/fusedlse.cpp, kernels in csrc/cpu and csrc/cuda)."""
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

IntOrPair = Union[int, Sequence[int]]


def conv_settings(stride: IntOrPair = 1, padding: IntOrPair = 0, output_padding: IntOrPair = 0,
                  dilation: IntOrPair = 1, groups: int = 1) -> dict:
    """nn.ConvTranspose2d's settings as the op's schema takes them (each int or pair becomes a pair)."""
    pair = lambda v: [int(v), int(v)] if isinstance(v, int) else [int(e) for e in v]  # noqa: E731
    return dict(stride=pair(stride), padding=pair(padding), output_padding=pair(output_padding),
                dilation=pair(dilation), groups=int(groups))


def check_conv_settings(stride: IntOrPair = 1, padding: IntOrPair = 0, output_padding: IntOrPair = 0,
                        dilation: IntOrPair = 1, groups: int = 1) -> None:
    """Raises the op's own error for settings it cannot compute (padding > 0, groups > 1) or that are invalid."""
    torch.ops.fusedlse.check_conv_settings.default(**conv_settings(stride, padding, output_padding, dilation, groups))


def forward(x: Tensor, weight: Tensor, conv_bias: Optional[Tensor], bias: Tensor, *, stride: IntOrPair = 1,
            padding: IntOrPair = 0, output_padding: IntOrPair = 0, dilation: IntOrPair = 1,
            groups: int = 1) -> Tensor:
    """The whole model: ``10 * logsumexp(mean_HW(conv_transpose2d(x, weight, conv_bias, ...)) + bias)`` over C_out.

    Args:
        x: ``[B, C_in, H, W]``, float16, bfloat16, float32 or float64; any strides (contiguous and
            channels_last are read in place, other layouts are copied first).
        weight: ``[C_in, C_out, kH, kW]``, nn.ConvTranspose2d's layout, same dtype and device as ``x``.
        conv_bias: ``[C_out]`` or None.
        bias: ``C_out`` elements in any shape (the model's is ``[C_out, 1, 1]``).
        stride, output_padding, dilation: as nn.ConvTranspose2d's (int or pair); they change only H_out, W_out.
        padding, groups: only 0 and 1; anything else raises an error naming the setting.

    Returns:
        ``[B, 1]`` in ``x``'s dtype. Sums accumulate in float32 (float64 for float64 input), no TF32.
        Results are bitwise reproducible run to run on the same device. Differentiable in x, weight, conv_bias
        and bias (see fusedlse_cuda.autograd).

    ``torch.ops.fusedlse.forward`` itself also returns ``sum_hw(x)``, which its backward uses instead of reading x
    again.
    """
    args = (x, weight, conv_bias, bias)
    if not (stride == 1 and padding == 0 and output_padding == 0 and dilation == 1 and groups == 1):
        args += tuple(conv_settings(stride, padding, output_padding, dilation, groups).values())
    out, _ = _call(torch.ops.fusedlse.forward.default, *args)
    return out


def _call(op, *args):
    """op(*args). When nothing needs a gradient, dispatched below autograd: what the registered (Python) autograd
    kernel does itself then, without its Python round trip (about 10 us per call, as much as the launch on a small
    problem). Traced graphs pay no per-call Python, so under torch.compile the plain op is kept."""
    if torch.compiler.is_compiling() or (
            torch.is_grad_enabled() and any(isinstance(a, Tensor) and a.requires_grad for a in args)):
        return op(*args)
    with torch._C._AutoDispatchBelowAutograd():
        return op(*args)


def sum_hw(x: Tensor) -> Tensor:
    """``x.sum(dim=(2, 3))`` of ``x [B, C, H, W]`` as ``[B, C]`` float32 (float64 for float64 input)."""
    return _call(torch.ops.fusedlse.sum_hw.default, x)


def gemm_lse(sums: Tensor, weight_sum: Tensor, total_bias: Tensor, scale: float) -> Tensor:
    """The epilogue: ``10 * logsumexp(sums @ weight_sum * scale + total_bias, dim=1, keepdim=True)``.

    Args:
        sums: ``[B, C_in]`` float32 or float64 (what :func:`sum_hw` returns).
        weight_sum: ``[C_in, C_out]``, e.g. ``weight.sum((2, 3))``, same dtype as ``sums``.
        total_bias: ``C_out`` elements (``conv_bias + bias``), same dtype.
        scale: ``1 / (H_out * W_out)``.

    Returns:
        ``[B, 1]`` in ``sums``'s dtype.
    """
    return _call(torch.ops.fusedlse.gemm_lse.default, sums, weight_sum, total_bias, float(scale))


def broadcast_hw(rows: Tensor, height: int, width: int, dtype: torch.dtype,
                 memory_format: torch.memory_format = torch.contiguous_format) -> Tensor:
    """``rows [B, C]`` repeated over every ``(h, w)``: a new ``[B, C, height, width]`` tensor of ``dtype``.

    The backward of :func:`sum_hw` (grad_x of the forward is one of these). ``rows`` must already be in the
    accumulation type of ``dtype`` (float32, or float64 for float64); each value is rounded to ``dtype`` once.
    ``memory_format`` is ``torch.contiguous_format`` or ``torch.channels_last``.
    """
    if memory_format not in (torch.contiguous_format, torch.channels_last):
        raise ValueError(f"memory_format must be torch.contiguous_format or torch.channels_last, got {memory_format}")
    return _call(torch.ops.fusedlse.broadcast_hw.default, rows, height, width, dtype,
                 memory_format == torch.channels_last)


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the sums for inputs of ``dtype``: float64 for float64, float32 otherwise (as in csrc)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def cuda_backend_built() -> bool:
    """Whether this build carries the CUDA kernels (False for a FUSEDLSE_CPU_ONLY=1 build)."""
    return torch._C._dispatch_has_kernel_for_dispatch_key("fusedlse::forward", "CUDA")


# Fake kernels: output shape and dtype only, so the ops trace under torch.compile and torch.export (symbolic shapes
# included). Argument validation runs in the real kernels (csrc/fusedlse.cpp).
@torch.library.register_fake("fusedlse::forward")
def _forward_fake(x, weight, conv_bias, bias, stride=(1, 1), padding=(0, 0), output_padding=(0, 0), dilation=(1, 1),
                  groups=1):
    return x.new_empty((x.shape[0], 1)), x.new_empty((x.shape[0], x.shape[1]), dtype=accumulation_dtype(x.dtype))


@torch.library.register_fake("fusedlse::sum_hw")
def _sum_hw_fake(x):
    return x.new_empty((x.shape[0], x.shape[1]), dtype=accumulation_dtype(x.dtype))


@torch.library.register_fake("fusedlse::gemm_lse")
def _gemm_lse_fake(sums, weight_sum, total_bias, scale):
    return sums.new_empty((sums.shape[0], 1))


@torch.library.register_fake("fusedlse::broadcast_hw")
def _broadcast_hw_fake(rows, height, width, dtype, channels_last=False):
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty((rows.shape[0], rows.shape[1], height, width), dtype=dtype, device=rows.device,
                       memory_format=memory_format)
