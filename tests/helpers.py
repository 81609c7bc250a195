"""What tests and benchmarks share: problems whose output depends strongly on x, their shapes and settings, the
error measure, tolerances, devices. Test modules import this module and the package, never each other; bench/
imports it too (bench/problems.py), so both draw inputs the same way and write shapes in the same order."""
import math
import os

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
# Where the Triton paths run: compiled on the GPU, and on CPU tensors through Triton's interpreter
# (TRITON_INTERPRET=1, which conftest.py sets without a GPU, as in CI).
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
TRITON_DEVICES = [
    pytest.param("cpu", marks=pytest.mark.skipif(not INTERPRETED, reason="CPU tensors need TRITON_INTERPRET=1")),
    pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA or INTERPRETED,
                                                                     reason="needs a CUDA GPU, compiled Triton")]),
]

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
# Relative error allowed against the float64 truth of the same (already rounded) inputs: accumulation in
# float32 (float64) leaves far less; 16-bit outputs are rounded to their dtype, half an ulp of ~50-100.
TOLERANCE = {torch.float64: 1e-10, torch.float32: 2e-5, torch.float16: 1e-3, torch.bfloat16: 8e-3}

LAYOUTS = ["contiguous", "channels_last", "offset", "sliced"]

# Every problem size, in tests and in bench/problems.py, is a tuple in make_problem's order:
SHAPE_FIELDS = ("batch", "c_in", "height", "width", "c_out", "kernel_h", "kernel_w")

# (B, C_in, H, W, C_out, kH, kW)
SHAPES = {
    "small": (2, 3, 8, 8, 5, 3, 3),
    "odd509_b1": (1, 2, 509, 509, 3, 3, 3),
    "hw1x1": (3, 5, 1, 1, 7, 3, 3),
    "cout1000_kh_ne_kw": (2, 6, 7, 5, 1000, 2, 4),
    "cout4099": (2, 3, 9, 7, 4099, 1, 2),
    "cout1": (3, 4, 6, 10, 1, 3, 3),
    "wide_cin": (2, 300, 5, 6, 40, 3, 3),  # several epilogue units per batch
    "long_rows": (2, 3, 200, 300, 16, 3, 3),  # rows split across warps
    # short rows in units of several batches (the last tile partial), two unit groups, two passes of 256 columns
    "batch_units": (37, 70, 5, 7, 300, 3, 3),
    # small x: self-contained batch tiles (contiguous), several batches per tile where B exceeds the resident blocks
    "self_contained": (601, 3, 8, 8, 5, 3, 3),
    # self-contained tiles of five batches (float32) whose 300 columns take two passes of the block's threads
    "self_contained_wide": (1200, 2, 4, 4, 300, 1, 1),
}

# nn.ConvTranspose2d settings for tests whose weights are ungrouped (groups: tests/test_padding_groups.py).
SETTINGS = {
    "default": {},
    "stride2": dict(stride=2),
    "stride_output_padding": dict(stride=(3, 2), output_padding=(2, 1)),
    "dilation": dict(dilation=(2, 3)),
    "all": dict(stride=(2, 1), output_padding=(1, 0), dilation=(1, 2)),
    "output_padding_via_dilation": dict(dilation=3, output_padding=2),  # output_padding < dilation suffices
    "padding": dict(padding=1),
    "padding_all": dict(stride=(2, 1), padding=(2, 1), output_padding=(1, 0), dilation=(1, 2)),
}


def rel_err(out, ref):
    """max |out - ref| over max(max |ref|, 1), in float64 on the CPU."""
    out = out.detach().to("cpu", torch.float64)
    ref = ref.detach().to("cpu", torch.float64)
    assert out.shape == ref.shape, (out.shape, ref.shape)
    return ((out - ref).abs().max() / ref.abs().max().clamp_min(1.0)).item()


def rows_lse_applies(c_in, c_out, dtype):
    """plan::rows_lse_applies, restated for the tests: at most 16 channels, and W.sum and the biases' sum (columns
    padded to chunks of 8) with the sums of 129 rows' slots per channel within 48 KiB of the accumulation type."""
    acc_bytes = 8 if dtype == torch.float64 else 4
    padded = -(-c_out // 8) * 8
    return c_in <= 16 and ((c_in + 1) * padded + c_in * 129) * acc_bytes <= 48 * 1024


def narrow_lse_applies(c_in, c_out, dtype):
    """plan::narrow_lse_applies, restated for the tests: C_out at most 32, any C_in (in channel ranges where W.sum does
    not fit a block: narrow_lse_splits)."""
    return 1 <= c_out <= 32 and c_in >= 1


def narrow_lse_splits(c_in, c_out, dtype):
    """plan::narrow_lse_tiling's channel ranges, restated for the tests: the fewest equal ranges whose W.sum (columns
    padded to 4, 8, 16 or 32) with the biases' sum, (range + 1) x columns values of the accumulation type, fit 96
    KiB."""
    acc_bytes = 8 if dtype == torch.float64 else 4
    columns = next(c for c in (4, 8, 16, 32) if c_out <= c)
    most = 96 * 1024 // (columns * acc_bytes) - 1
    splits = -(-c_in // most)
    return -(-c_in // -(-c_in // splits))


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
    if layout == "sliced":  # no dimension of unit stride pattern the kernels walk: x[:, :, 1:, 2:] of a bigger one
        b, c, h, w = x.shape
        # NaN between the rows: a reader that loads the gaps (the masked-vector walk) must add none of them.
        big = torch.full((b, c, h + 1, w + 2), float("nan"), dtype=x.dtype, device=x.device)
        view = big[:, :, 1:, 2:]
        view.copy_(x)
        return view
    raise ValueError(layout)


# Views a user may pass whose strides no layout above has: dimensions broadcast by expand() (stride 0) and views
# whose rows, planes or pixels share elements (as unfold() and as_strided() make).
STRIDED_VIEWS = ["expanded_batch", "expanded_channels", "expanded_rows", "expanded_columns", "expanded_planes",
                 "expanded_pixels", "expanded_channels_last_batch", "one_value", "overlapping_rows",
                 "overlapping_planes", "overlapping_pixels"]


def strided_view(x, view):
    """A view of x's storage with x's shape and the strides `view` names (STRIDED_VIEWS). Unlike lay_out, its values
    are not x's: an expanded dimension repeats its first entry and overlapping elements are read twice, so compare
    against the view itself (or its contiguous copy)."""
    b, c, h, w = x.shape
    if view.startswith("expanded_") or view == "one_value":
        source = {
            "expanded_batch": x[:1],
            "expanded_channels": x[:, :1],
            "expanded_rows": x[:, :, :1],  # rows of contiguous W, all at one address: stride_h 0
            "expanded_columns": x[..., :1],  # stride_w 0: neither W nor C contiguous
            "expanded_planes": x[:, :, :1, :1],  # strides (C H W, H W, 0, 0)
            "expanded_pixels": x[:, :, :1, :1].contiguous(),  # strides (C, 1, 0, 0): channels-last, pixel stride 0
            "expanded_channels_last_batch": x.contiguous(memory_format=torch.channels_last)[:1],
            "one_value": x[:1, :1, :1, :1],
        }[view]
        return source.expand(b, c, h, w)
    if view == "overlapping_rows":  # each row starts half a row after the one before it
        return torch.as_strided(x.contiguous(), (b, c, h, w), (c * h * w, h * w, max(1, w // 2), 1))
    if view == "overlapping_planes":  # plane c + 1 starts one row after plane c
        return torch.as_strided(x.contiguous(), (b, c, h, w), (c * h * w, w, w, 1))
    if view == "overlapping_pixels":  # channels-last with pixels half a pixel's channels apart
        pixel = max(1, c // 2)
        flat = x.permute(0, 2, 3, 1).contiguous()
        return torch.as_strided(flat, (b, c, h, w), (h * w * c, 1, w * pixel, pixel))
    raise ValueError(view)


def make_problem(batch, c_in, height, width, c_out, kernel_h, kernel_w, dtype=torch.float32, device="cpu",
                 layout="contiguous", seed=0, conv_bias=True, draw_on_device=False):
    """Inputs where each (b, c_in) row has its own offset and scale, so the output depends strongly on x.

    The values are drawn in float64 on the CPU, then rounded to dtype: the same values on every device.
    draw_on_device=True (benchmarks) draws them on `device` in float32 (float64 for float64) instead: other values
    from the same distribution, and seconds rather than minutes for GiB-sized inputs."""
    draw = dict(device=torch.device(device) if draw_on_device else torch.device("cpu"),
                dtype=torch.float32 if draw_on_device and dtype != torch.float64 else torch.float64)
    g = torch.Generator(device=draw["device"]).manual_seed(seed)
    offsets = torch.randn(batch, c_in, 1, 1, generator=g, **draw) * 2
    scales = torch.rand(batch, c_in, 1, 1, generator=g, **draw) * 2 + 0.1
    x = torch.randn(batch, c_in, height, width, generator=g, **draw).mul_(scales).add_(offsets)
    weight = torch.randn(c_in, c_out, kernel_h, kernel_w, generator=g, **draw)
    weight *= 3 / math.sqrt(c_in * kernel_h * kernel_w)
    cbias = torch.randn(c_out, generator=g, **draw) if conv_bias else None
    bias = torch.randn(c_out, 1, 1, generator=g, **draw)
    to = lambda t: None if t is None else t.to(device=device, dtype=dtype)  # noqa: E731
    return lay_out(to(x), layout), to(weight), to(cbias), to(bias)


def poison_allocator(device):
    """Fill memory the caching allocator will hand out next with NaN, so an unwritten output shows."""
    if str(device).startswith("cuda"):
        junk = torch.full((64 << 20,), float("nan"), device=device)
        del junk
