"""Python entry points of the fusedlse ops (schemas in csrc/fusedlse.cpp, kernels in csrc/cpu and csrc/cuda)."""
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch.autograd import forward_ad

from . import _C
from .reference import kept_ranges
from .shape import IntOrPair, conv_settings, pair  # noqa: F401  (conv_settings: part of the ops API)


def check_conv_settings(stride: IntOrPair = 1, padding: IntOrPair = 0, output_padding: IntOrPair = 0,
                        dilation: IntOrPair = 1, groups: int = 1) -> None:
    """Raises the op's own error for settings nn.ConvTranspose2d would refuse (with no tensors at hand)."""
    torch.ops.fusedlse.check_conv_settings.default(**conv_settings(stride, padding, output_padding, dilation, groups))


def forward(x: Tensor, weight: Tensor, conv_bias: Optional[Tensor], bias: Tensor, *, stride: IntOrPair = 1,
            padding: IntOrPair = 0, output_padding: IntOrPair = 0, dilation: IntOrPair = 1,
            groups: int = 1) -> Tensor:
    """The whole model: ``10 * logsumexp(mean_HW(conv_transpose2d(x, weight, conv_bias, ...)) + bias)`` over C_out.

    Args:
        x: ``[B, C_in, H, W]``, float16, bfloat16, float32 or float64; any strides, read in place. On CUDA a
            planner chooses how (:func:`fusedlse_cuda.explain` shows its choice for given x and weight).
        weight: ``[C_in, C_out / groups, kH, kW]``, nn.ConvTranspose2d's layout, same dtype and device as ``x``.
        conv_bias: ``[C_out]`` or None.
        bias: one value per output channel as the model broadcasts it: ``[C_out, 1, 1]`` (the model's),
            ``[1, C_out, 1, 1]``, or a single value (``[]``, ``[1]``, ``[1, 1, 1]``, ...).
            Other shapes (``[C_out]``, ``[1, C_out]``, ``[C_out, 1]``, ...) broadcast along B, H or W in the model
            and compute a different function: they raise an error here; :class:`ModelNew` computes any of them.
        stride, padding, output_padding, dilation, groups: as nn.ConvTranspose2d's (int, or pair of ints;
            anything ``operator.index`` takes, such as numpy integers; floats are refused), every value it accepts.
            stride, output_padding and dilation change only H_out, W_out. padding crops the output's border: each
            kernel tap then keeps a rectangle of x, whose sums (:func:`tap_sums`) make the GEMM
            ``[B, C_in * kH * kW] x [C_in * kH * kW, C_out]``, still one read of x. groups makes the GEMM
            block-diagonal (run as one with zeros between the groups). Output sizes whose area overflows int64, or
            that padding empties, are refused.

    Returns:
        ``[B, 1]`` in ``x``'s dtype. Sums accumulate in float32 (float64 for float64 input), no TF32 (with
        TF32 allowed, the split strategy's GEMM is split 3xTF32 to stay float32-exact).
        Results are bitwise reproducible run to run on the same device. Differentiable in x, weight, conv_bias
        and bias (see fusedlse_cuda.autograd), in reverse mode and, through a composite of torch ops, in forward
        mode (``torch.autograd.forward_ad``) and under ``torch.func`` transforms (jvp, jacfwd, grad, jacrev, vmap).

    ``torch.ops.fusedlse.forward`` itself also returns ``sum_hw(x)`` ``[B, C_in]`` (with padding > 0:
    ``tap_sums(x, ...)`` ``[B, C_in, kH, kW]``), which its backward uses instead of reading x again. Where nothing
    needs a gradient this function passes it ``keep_sums=False`` (not under ``torch.jit.trace``, whose graph may run a
    backward later): that second output is then an empty ``[0]`` tensor, and with padding > 0 no per-tap sums are
    written where its GEMM runs over each plane's cells or the tap kernels' shares (the op then has no backward:
    recording it for one raises an error).
    """
    args = (x, weight, conv_bias, bias)
    if _transformed(args):
        return _composite_forward(*args, *conv_settings(stride, padding, output_padding, dilation, groups).values())[0]
    # torch.jit.trace records the op's call as made, keep_sums included: traced, the sums are kept whatever the grad
    # mode, so that the graph can run a backward and does not depend on the grad mode of the call traced (jit.trace's
    # check traces again under no_grad, and found the graphs differ).
    tracing = torch.jit.is_tracing()
    if not torch.compiler.is_compiling() and not tracing:
        # The op below autograd, called from C (csrc/python_module.cpp), settings that are Python ints included.
        out = _C.forward_no_grad(*args, stride, padding, output_padding, dilation, groups)
        if out is not NotImplemented:
            return out
    defaults = (_is_plain(stride, 1) and _is_plain(padding, 0) and _is_plain(output_padding, 0) and
                _is_plain(dilation, 1) and groups.__class__ is int and groups == 1)
    if not defaults:
        args += tuple(conv_settings(stride, padding, output_padding, dilation, groups).values())
    keep_sums = tracing or _needs_grad(args)
    out, _ = _call(torch.ops.fusedlse.forward.default, *args, **({} if keep_sums else {"keep_sums": False}))
    return out


def _is_plain(value, number: int) -> bool:
    """Whether a pair setting (stride, padding, ...) is `number` given as a Python int or a tuple of two (what
    ModelNew passes: its module's tuples), so that the schema's default stands for it. Anything else (a float, a
    bool, a list, numpy or tensor values) goes through conv_settings, which refuses what nn.ConvTranspose2d would."""
    if value.__class__ is int:
        return value == number
    return (value.__class__ is tuple and len(value) == 2 and value[0].__class__ is int and value[1].__class__ is int
            and value[0] == number and value[1] == number)


def _needs_grad(args) -> bool:
    """Whether autograd records a call on args: grad mode on and a tensor among them that requires grad."""
    return torch.is_grad_enabled() and any(isinstance(a, Tensor) and a.requires_grad for a in args)


def _call(op, *args, **kwargs):
    """op(*args, **kwargs). When nothing needs a gradient, dispatched below autograd: what the registered (Python)
    autograd kernel does itself then, without its Python round trip (about 10 us per call, as much as the launch on a
    small problem). Traced graphs pay no per-call Python, so under torch.compile the plain op is kept."""
    if torch.compiler.is_compiling() or _needs_grad(args):
        return op(*args, **kwargs)
    with torch._C._AutoDispatchBelowAutograd():
        return op(*args, **kwargs)


def _transformed(args) -> bool:
    """Whether an argument carries a forward-mode tangent (torch.autograd.forward_ad) or is wrapped by a torch.func
    transform (jvp, jacfwd, grad, jacrev, vmap). The compiled ops have reverse-mode formulas only, so such calls
    run the same computation as differentiable torch ops (_composite_*), which every transform understands.
    Under torch.compile the check is skipped (the traced graph has no such tensors)."""
    if torch.compiler.is_compiling():
        return False
    duals = forward_ad._current_level >= 0
    if not duals and torch._C._functorch.maybe_current_level() is None:
        return False  # no transform and no dual level active: the common case, decided in about 0.3 us
    for a in args:
        if isinstance(a, Tensor) and (torch._C._functorch.is_functorch_wrapped_tensor(a) or
                                      (duals and forward_ad.unpack_dual(a).tangent is not None)):
            return True
    return False


def meta_twin(t: Optional[Tensor]) -> Optional[Tensor]:
    """A shape-only stand-in for t (the catch-all check ops validate shapes, dtypes and devices on it)."""
    return None if t is None else torch.empty(t.shape, dtype=t.dtype, device="meta")


def empty_twin(t: Tensor, empty_first_dim: bool = False) -> Tensor:
    """An unwrapped CPU stand-in for t, with its first dimension emptied if asked: an op's CPU kernel run on it does
    the op's checks and almost none of its work."""
    shape = tuple(t.shape)
    if empty_first_dim and shape:
        shape = (0,) + shape[1:]
    return torch.empty(shape, dtype=t.dtype)


def check_same_device(first: str, ref: Tensor, **others: Optional[Tensor]) -> None:
    """The C++ check_same_device's error, for code paths that do not reach the C++ checks (fakes, composites)."""
    for name, t in others.items():
        if t is not None and t.device != ref.device:
            raise RuntimeError(f"{name} is on {t.device} but {first} is on {ref.device}; move all arguments to one "
                               f"device")


def _composite_forward(x, weight, conv_bias, bias, stride=(1, 1), padding=(0, 0), output_padding=(0, 0),
                       dilation=(1, 1), groups=1):
    """fusedlse::forward as differentiable torch ops, with the op's checks (run on shape-only twins, so that no
    transform sees them) and numerics: sums in the accumulation dtype, output in x's dtype."""
    check_same_device("x", x, weight=weight, conv_bias=conv_bias, bias=bias)
    area = torch.ops.fusedlse.check_forward.default(*map(meta_twin, (x, weight, conv_bias, bias)), stride, padding,
                                                    output_padding, dilation, groups)
    acc = accumulation_dtype(x.dtype)
    total_bias = bias.reshape(-1).to(acc)
    if any(p > 0 for p in padding):
        # The definition itself: which inputs each tap keeps is the compiled ops' business (csrc/fusedlse.cpp).
        conv = torch.nn.functional.conv_transpose2d(x.to(acc), weight.to(acc), None, stride, padding,
                                                    output_padding, groups, dilation)
        logits = conv.mean(dim=(2, 3)) + total_bias.reshape(1, -1)
        if conv_bias is not None:
            logits = logits + conv_bias.to(acc)
        return (10 * torch.logsumexp(logits, dim=1, keepdim=True)).to(x.dtype), None
    if conv_bias is not None:
        total_bias = total_bias + conv_bias.to(acc)
    sums = x.sum(dim=(2, 3), dtype=acc)
    out = _composite_gemm_lse(sums, ungrouped_rows(weight.sum(dim=(2, 3), dtype=acc), groups), total_bias, 1.0 / area)
    return out.to(x.dtype), sums


def ungrouped_rows(rows: Tensor, groups: int) -> Tensor:
    """A grouped convolution's GEMM operand ``rows [C_in * T, C_out / groups]`` (T rows per input channel, e.g.
    ``W.sum((2, 3))``) as the ``[C_in * T, C_out]`` one of an ungrouped convolution: zero between groups
    (block-diagonal; differentiable)."""
    if groups == 1:
        return rows
    return torch.block_diag(*rows.reshape(groups, -1, rows.shape[1]).unbind(0))


def _composite_gemm_lse(sums, weight_sum, total_bias, scale):
    logits = sums @ weight_sum * scale + total_bias.reshape(1, -1)
    return torch.logsumexp(logits, dim=1, keepdim=True) * 10


def sum_hw(x: Tensor) -> Tensor:
    """``x.sum(dim=(2, 3))`` of ``x [B, C, H, W]`` as ``[B, C]`` float32 (float64 for float64 input)."""
    if _transformed((x,)):
        torch.ops.fusedlse.sum_hw.default(empty_twin(x, True))  # the op's checks
        return x.sum(dim=(2, 3), dtype=accumulation_dtype(x.dtype))
    return _call(torch.ops.fusedlse.sum_hw.default, x)


def tap_sums(x: Tensor, kernel_size: IntOrPair, *, stride: IntOrPair = 1, padding: IntOrPair = 0,
             output_padding: IntOrPair = 0, dilation: IntOrPair = 1) -> Tensor:
    """Per ``(b, c)`` plane of ``x [B, C, H, W]`` and tap ``(t_h, t_w)`` of a ``kernel_size`` kernel, the sum of the
    inputs whose products with that tap survive nn.ConvTranspose2d's crop of ``padding``: ``[B, C, kH, kW]`` in
    float32 (float64 for float64 input). The forward's second output when padding > 0, which its backward takes
    (its GEMM runs over these or over each plane's cells: ``explain``'s ``gemm_over``); with padding 0 every tap
    keeps the whole plane. Reads x once (its border rows and columns twice where ATen sums them)."""
    settings = conv_settings(stride, padding, output_padding, dilation)
    settings.pop("groups")
    kernel = pair("kernel_size", kernel_size)
    if _transformed((x,)):
        torch.ops.fusedlse.tap_sums.default(empty_twin(x, True), kernel, *settings.values())  # the op's checks
        rows, cols = _kept_masks(x.shape[2], x.shape[3], kernel, settings, accumulation_dtype(x.dtype), x.device)
        return torch.einsum("bchw,th,uw->bctu", x.to(rows.dtype), rows, cols)
    return _call(torch.ops.fusedlse.tap_sums.default, x, kernel, *settings.values())


def broadcast_taps(taps: Tensor, height: int, width: int, dtype: torch.dtype, *, stride: IntOrPair = 1,
                   padding: IntOrPair = 0, output_padding: IntOrPair = 0, dilation: IntOrPair = 1,
                   memory_format: torch.memory_format = torch.contiguous_format) -> Tensor:
    """The adjoint of :func:`tap_sums` (the backward's grad_x when padding > 0): ``taps [B, C, kH, kW]`` in the
    accumulation type of ``dtype`` -> ``[B, C, height, width]`` of ``dtype``, each input the sum of the taps that keep
    it, rounded once."""
    if memory_format not in (torch.contiguous_format, torch.channels_last):
        raise ValueError(f"memory_format must be torch.contiguous_format or torch.channels_last, got {memory_format}")
    settings = conv_settings(stride, padding, output_padding, dilation)
    settings.pop("groups")
    channels_last = memory_format == torch.channels_last
    if _transformed((taps,)):
        torch.ops.fusedlse.broadcast_taps.default(empty_twin(taps, True), height, width, dtype, *settings.values(),
                                                  channels_last)  # the op's checks
        rows, cols = _kept_masks(height, width, tuple(taps.shape[2:]), settings, taps.dtype, taps.device)
        return torch.einsum("bctu,th,uw->bchw", taps, rows, cols).to(dtype).contiguous(memory_format=memory_format)
    return _call(torch.ops.fusedlse.broadcast_taps.default, taps, height, width, dtype, *settings.values(),
                 channels_last)


def _kept_masks(height: int, width: int, kernel: Sequence[int], settings: dict, dtype: torch.dtype,
                device: torch.device) -> Tuple[Tensor, Tensor]:
    """tap_sums and broadcast_taps as torch ops, for the transforms the compiled ops have no formulas for (forward
    mode, torch.func): ``rows [kH, H]`` and ``cols [kW, W]``, 1 where the tap keeps the input (reference.kept_ranges:
    nn.ConvTranspose2d's crop), else 0. Then tap_sums is ``einsum("bchw,th,uw->bctu", x, rows, cols)`` and
    broadcast_taps its transpose: linear, so every transform takes them as they are."""
    masks = []
    for size, kept in zip((height, width), kept_ranges(height, width, kernel, settings)):
        mask = torch.zeros(len(kept), size, dtype=dtype, device=device)
        for tap, (first, end) in enumerate(kept):
            mask[tap, first:end] = 1
        masks.append(mask)
    return masks[0], masks[1]


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
    args = (sums, weight_sum, total_bias)
    if _transformed(args):
        check_same_device("sums", sums, weight_sum=weight_sum, total_bias=total_bias)
        torch.ops.fusedlse.gemm_lse.default(empty_twin(sums, True), empty_twin(weight_sum), empty_twin(total_bias),
                                            float(scale))  # the op's checks
        return _composite_gemm_lse(*args, float(scale))
    return _call(torch.ops.fusedlse.gemm_lse.default, *args, float(scale))


def broadcast_hw(rows: Tensor, height: int, width: int, dtype: torch.dtype,
                 memory_format: torch.memory_format = torch.contiguous_format) -> Tensor:
    """``rows [B, C]`` repeated over every ``(h, w)``: a new ``[B, C, height, width]`` tensor of ``dtype``.

    The backward of :func:`sum_hw` (grad_x of the forward is one of these). ``rows`` must already be in the
    accumulation type of ``dtype`` (float32, or float64 for float64); each value is rounded to ``dtype`` once.
    ``memory_format`` is ``torch.contiguous_format`` or ``torch.channels_last``.
    """
    if memory_format not in (torch.contiguous_format, torch.channels_last):
        raise ValueError(f"memory_format must be torch.contiguous_format or torch.channels_last, got {memory_format}")
    if _transformed((rows,)):
        torch.ops.fusedlse.broadcast_hw.default(empty_twin(rows, True), height, width, dtype)  # the op's checks
        shape = (rows.shape[0], rows.shape[1], height, width)
        return rows.to(dtype)[:, :, None, None].expand(shape).contiguous(memory_format=memory_format)
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
# Tensors on different devices, meta among them, dispatch here too (Meta outranks every backend): they must fail
# as the real kernels do, not return uninitialised memory.
@torch.library.register_fake("fusedlse::forward")
def _forward_fake(x, weight, conv_bias, bias, stride=(1, 1), padding=(0, 0), output_padding=(0, 0), dilation=(1, 1),
                  groups=1, keep_sums=True):
    check_same_device("x", x, weight=weight, bias=bias, conv_bias=conv_bias)
    if not keep_sums:
        sums_shape = (0,)
    elif any(p > 0 for p in padding):
        sums_shape = (x.shape[0], x.shape[1], weight.shape[2], weight.shape[3])
    else:
        sums_shape = (x.shape[0], x.shape[1])
    return x.new_empty((x.shape[0], 1)), x.new_empty(sums_shape, dtype=accumulation_dtype(x.dtype))


@torch.library.register_fake("fusedlse::tap_sums")
def _tap_sums_fake(x, kernel_size, stride=(1, 1), padding=(0, 0), output_padding=(0, 0), dilation=(1, 1)):
    return x.new_empty((x.shape[0], x.shape[1], kernel_size[0], kernel_size[1]), dtype=accumulation_dtype(x.dtype))


@torch.library.register_fake("fusedlse::broadcast_taps")
def _broadcast_taps_fake(taps, height, width, dtype, stride=(1, 1), padding=(0, 0), output_padding=(0, 0),
                         dilation=(1, 1), channels_last=False):
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty((taps.shape[0], taps.shape[1], height, width), dtype=dtype, device=taps.device,
                       memory_format=memory_format)


@torch.library.register_fake("fusedlse::sum_hw")
def _sum_hw_fake(x):
    return x.new_empty((x.shape[0], x.shape[1]), dtype=accumulation_dtype(x.dtype))


@torch.library.register_fake("fusedlse::gemm_lse")
def _gemm_lse_fake(sums, weight_sum, total_bias, scale):
    check_same_device("sums", sums, weight_sum=weight_sum, total_bias=total_bias)
    return sums.new_empty((sums.shape[0], 1))


@torch.library.register_fake("fusedlse::broadcast_hw")
def _broadcast_hw_fake(rows, height, width, dtype, channels_last=False):
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty((rows.shape[0], rows.shape[1], height, width), dtype=dtype, device=rows.device,
                       memory_format=memory_format)
