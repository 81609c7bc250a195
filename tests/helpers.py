"""Shared test fixtures: problems whose output depends strongly on x, the float64 truth, tolerances, devices."""
import math

import pytest
import torch

import fusedlse_cuda
from fusedlse_cuda import reference

HAS_CUDA = torch.cuda.is_available() and fusedlse_cuda.cuda_backend_built()
_NO_CUDA_REASON = (
    "no CUDA GPU" if not torch.cuda.is_available() else "fusedlse_cuda was built without its CUDA backend"
)
CUDA = pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason=_NO_CUDA_REASON)])
DEVICES = ["cpu", CUDA]

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
# Relative error allowed against the float64 truth of the same (already rounded) inputs: accumulation in
# float32 (float64) leaves far less; 16-bit outputs are rounded to their dtype, half an ulp of ~50-100.
TOLERANCE = {torch.float64: 1e-10, torch.float32: 2e-5, torch.float16: 1e-3, torch.bfloat16: 8e-3}

LAYOUTS = ["contiguous", "channels_last", "offset", "sliced"]


def rel_err(out, ref):
    out = out.detach().to("cpu", torch.float64)
    ref = ref.detach().to("cpu", torch.float64)
    assert out.shape == ref.shape, (out.shape, ref.shape)
    return ((out - ref).abs().max() / ref.abs().max().clamp_min(1.0)).item()


def lay_out(x, layout):
    """x's values in the requested memory layout (same logical tensor)."""
    if layout == "contiguous":
        return x.contiguous()
    if layout == "channels_last":
        return x.contiguous(memory_format=torch.channels_last)
    if layout == "offset":  # every row starts one element past alignment
        flat = torch.empty(x.numel() + 1, dtype=x.dtype, device=x.device)
        view = flat[1:].view(x.shape)
        view.copy_(x)
        return view
    if layout == "sliced":  # no dimension of unit stride pattern the kernels walk: x[:, :, 1:, 1:] of a bigger one
        b, c, h, w = x.shape
        big = torch.empty(b, c, h + 1, w + 2, dtype=x.dtype, device=x.device)
        view = big[:, :, 1:, 2:]
        view.copy_(x)
        return view
    raise ValueError(layout)


def make_problem(batch, c_in, height, width, c_out, kernel_h, kernel_w, dtype=torch.float32, device="cpu",
                 layout="contiguous", seed=0, conv_bias=True):
    """Inputs where each (b, c_in) row has its own offset and scale, so the output depends strongly on x."""
    g = torch.Generator().manual_seed(seed)
    offsets = torch.randn(batch, c_in, 1, 1, generator=g, dtype=torch.float64) * 2
    scales = torch.rand(batch, c_in, 1, 1, generator=g, dtype=torch.float64) * 2 + 0.1
    x = offsets + scales * torch.randn(batch, c_in, height, width, generator=g, dtype=torch.float64)
    weight = torch.randn(c_in, c_out, kernel_h, kernel_w, generator=g, dtype=torch.float64)
    weight *= 3 / math.sqrt(c_in * kernel_h * kernel_w)
    cbias = torch.randn(c_out, generator=g, dtype=torch.float64) if conv_bias else None
    bias = torch.randn(c_out, 1, 1, generator=g, dtype=torch.float64)
    to = lambda t: None if t is None else t.to(device=device, dtype=dtype)  # noqa: E731
    return lay_out(to(x), layout), to(weight), to(cbias), to(bias)


def poison_allocator(device):
    """Fill memory the caching allocator will hand out next with NaN, so an unwritten output shows."""
    if str(device).startswith("cuda"):
        junk = torch.full((64 << 20,), float("nan"), device=device)
        del junk
