"""The benchmark sweep: named problems, their inputs, the providers that compute the forward, and the one check
every GPU-only script makes first.

Shapes are written in tests/helpers.py's order, (B, C_in, H, W, C_out, kH, kW), and inputs come from its
make_problem: one input generator and one error measure (rel_err) for tests and benchmarks.
"""
import functools
import math
import os
import random
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
import fusedlse_cuda  # noqa: E402
from fusedlse_cuda import reference  # noqa: E402
from helpers import SHAPE_FIELDS, lay_out, make_problem, rel_err  # noqa: E402,F401  (rel_err: for the scripts)

# name: ((B, C_in, H, W, C_out, kH, kW), dtype, layout)
SWEEP = {
    "headline": ((16, 64, 512, 512, 128, 3, 3), torch.float32, "contiguous"),
    "headline_bf16": ((16, 64, 512, 512, 128, 3, 3), torch.bfloat16, "contiguous"),
    "headline_fp16": ((16, 64, 512, 512, 128, 3, 3), torch.float16, "contiguous"),
    "headline_nhwc": ((16, 64, 512, 512, 128, 3, 3), torch.float32, "channels_last"),
    "kb_old": ((128, 3, 32, 32, 16, 3, 3), torch.float32, "contiguous"),  # KernelBench's earlier sizes
    "skinny": ((1, 4, 2048, 2048, 128, 3, 3), torch.float32, "contiguous"),
    "short_rows": ((256, 512, 16, 16, 256, 3, 3), torch.float32, "contiguous"),
    "mid": ((32, 128, 128, 128, 256, 3, 3), torch.float32, "contiguous"),
    "odd509": ((16, 64, 509, 509, 128, 3, 3), torch.float32, "contiguous"),
}
# Cost against bytes: 16 MiB per batch row of 64 x 256 x 256 float32, 1 to 64 rows.
for _batch in (1, 2, 4, 8, 16, 32, 64):
    SWEEP[f"grow_{_batch * 64 * 256 * 256 * 4}"] = ((_batch, 64, 256, 256, 128, 3, 3), torch.float32, "contiguous")

# Issue 14's targets for the named shapes: fusedlse CUDA's GB/s (bytes of x / time) as a share of the GB/s of torch's
# x.sum(dim=(2, 3)) on the headline, measured in the same run (bench/sweep.py, named_targets).
NAMED_TARGETS = {"headline": 0.99, "headline_bf16": 0.97, "headline_fp16": 0.97, "headline_nhwc": 0.97, "odd509": 0.97,
                 "mid": 0.92, "short_rows": 0.85, "skinny": 0.80}

# The headline's channels and kernel at a size a CPU runs in milliseconds (make run without a GPU).
HEADLINE_ON_CPU = (4, 64, 64, 64, 128, 3, 3)


def make_inputs(name, device="cuda", seed=0):
    """(x, weight, conv_bias, bias) of a sweep problem, drawn on the device."""
    shape, dtype, layout = SWEEP[name]
    return make_problem(*shape, dtype=dtype, device=device, layout=layout, seed=seed, draw_on_device=True)


def describe(shape):
    """'16x64x512x512 -> 128, k=3x3' for a (B, C_in, H, W, C_out, kH, kW) tuple."""
    size = dict(zip(SHAPE_FIELDS, shape))
    return (f"{size['batch']}x{size['c_in']}x{size['height']}x{size['width']} -> {size['c_out']}, "
            f"k={size['kernel_h']}x{size['kernel_w']}")


def _no_gpu():
    if torch.cuda.is_available():
        return None
    return "this torch is a CPU-only build" if torch.version.cuda is None else "torch.cuda.is_available() is False"


_NO_BACKEND = ("fusedlse_cuda was built without its CUDA backend (FUSEDLSE_CPU_ONLY=1, or no CUDA toolkit at build "
               "time; rebuild with `make install FUSEDLSE_CUDA=1`)")


def cuda_missing():
    """None when fusedlse's CUDA path can run here, else exactly what is missing, in one sentence."""
    reasons = []
    if _no_gpu():
        reasons.append(f"no CUDA GPU found ({_no_gpu()})")
    if not fusedlse_cuda.cuda_backend_built():
        reasons.append(_NO_BACKEND)
    return "; and ".join(reasons) or None


def require_cuda(script):
    """Exit with status 0 and one line when this machine cannot run the CUDA path that `script` measures."""
    if _no_gpu():
        print(f"{script} needs a CUDA GPU; none found ({_no_gpu()}). Nothing measured.")
        raise SystemExit(0)
    if not fusedlse_cuda.cuda_backend_built():
        print(f"{script} needs fusedlse's CUDA backend: {_NO_BACKEND}. Nothing measured.")
        raise SystemExit(0)


def _triton_seed():
    from triton_ref import seed

    return seed.forward


def _triton_tuned():
    try:
        from triton_ref import tuned
    except ImportError:
        return None
    return tuned.forward


@functools.lru_cache(maxsize=None)
def _compiled(fn):
    return torch.compile(fn)


# provider -> factory returning forward(x, weight, conv_bias, bias), or None where the provider does not exist yet
PROVIDERS = {
    "cuda": lambda: fusedlse_cuda.forward,
    "triton_tuned": _triton_tuned,
    "triton_seed": _triton_seed,
    "torch_shortcut": lambda: reference.shortcut,
    "torch_shortcut_compiled": lambda: _compiled(reference.shortcut),
    "torch_model": lambda: reference.model_forward,
    "torch_model_compiled": lambda: _compiled(reference.model_forward),
}


# The public random sweep: seeded shapes nobody tuned for. Each (dtype, layout) pair gets an equal share.
RANDOM_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)
RANDOM_LAYOUTS = ("contiguous", "channels_last", "sliced_hw", "sliced_bc")
RANDOM_LIMITS = dict(batch=10**6, c_in=2048, c_out=8192, plane=4 * 2**20, min_bytes=8 * 2**20, max_bytes=2**30)
# Corners the random draw rarely reaches, each (B, C_in, H, W, C_out, kH, kW): a million 1x1 planes, a million
# batches of tiny planes, one channel into thousands, the widest GEMM, one huge plane, long thin planes.
RANDOM_CORNERS = (
    (10**6, 4, 1, 1, 64, 3, 3),
    (10**6, 2, 2, 3, 16, 2, 2),
    (64, 1, 256, 256, 4096, 3, 3),
    (2048, 2048, 1, 1, 8192, 1, 1),
    (1, 64, 2048, 2048, 100, 3, 3),
    (3, 5, 2**20, 1, 700, 5, 1),
    (512, 2048, 4, 4, 1024, 3, 3),
    (100000, 16, 3, 3, 3, 4, 4),
)


# Where csrc/plan.cpp draws lines between strategies or readers (docs/limits.md §47, §48): {grid: {name: ((B, C_in, H,
# W, C_out, kH, kW), dtype, layout)}}, 3 x 3 kernels. `python bench/strategies.py --grid NAME` forces every strategy and
# reader on them. medium_planes: contiguous float32 planes of 16 KiB to 1 MiB in x of 32 MiB to 1 GiB, the fused
# launch's envelope; channels_last: channels-last float32 x of 361 to 8100 pixels, by batches, pixels and channels whose
# pixels are whole 16-byte vectors (96, 600) or not (197); small_channels_last: channels-last x of 64 MiB, 6 x 6 to 31 x
# 31 pixels, C 8 to 600, float32 and bfloat16; both about the channel-rows reader's fewest pixels
# (kChannelRowsMinPixels, 400); tiny_channels_last: channels-last planes of 2 x 2 to 5 x 5 pixels, x of 128 MiB in
# float32 and bfloat16, about the channel-rows reader's pixel-vector walk (kPixelVectors*) and the plane-lanes reader's
# smallest pixels and planes (kTinyLanesMinPixelBytes, ...PlaneBytes); narrow_columns: contiguous 1 x 1 planes, x of 128
# MiB, C_in 64 to 767 into C_out 4 to 32, about where the narrow epilogue gives way to the tiled one or cuBLAS's
# (kNarrowLseSharedLoadSlots: between 16 and 24 columns; kCublasMinTile); few_rows: contiguous float32 x of 32 MiB, B 1
# to 512, C_in 16 to 1024 into C_out 16 to 1024, about where the gemv epilogue gives way to the others
# (kGemvL2BytesPerClock).
_MEDIUM_PLANES = [(128, 16, 64, 64, 16), (32, 64, 64, 64, 64), (64, 32, 64, 64, 512), (8, 512, 64, 64, 32),
                  (16, 64, 128, 128, 128), (4, 256, 128, 128, 64), (256, 32, 64, 64, 16), (16, 128, 128, 128, 16),
                  (256, 64, 64, 64, 16), (512, 32, 64, 64, 64), (64, 64, 128, 128, 64), (32, 32, 256, 256, 16),
                  (8, 128, 256, 256, 64), (4, 64, 512, 512, 16), (64, 128, 128, 128, 16), (32, 64, 256, 256, 16),
                  (128, 512, 64, 64, 16), (64, 64, 256, 256, 16), (16, 64, 512, 512, 16), (128, 8, 512, 512, 16)]
_CHANNELS_LAST = [(b, c, side, side, 64 if c == 197 else 16) for b in (8, 16, 32, 48)
                  for side in (19, 24, 31, 32, 45, 60, 90) for c in (197, 600, 96) if b * c * side * side * 4 >= 10**7]
_CHANNELS_LAST += [(256, 64, 32, 32, 16), (128, 128, 48, 48, 64), (64, 256, 32, 32, 128), (16, 197, 186, 20, 88),
                   (512, 32, 32, 32, 16), (16, 1024, 32, 32, 64), (64, 197, 60, 60, 16), (256, 256, 32, 32, 16)]
_SMALL_CHANNELS_LAST = [((64 << 20) // (c * side * side * element_bytes), c, side, side, 16, dtype)
                        for dtype, element_bytes in ((torch.float32, 4), (torch.bfloat16, 2))
                        for c in (8, 32, 96, 197, 600) for side in (6, 16, 19, 20, 31)]
_NARROW_COLUMNS = [((128 << 20) // (c * element_bytes), c, 1, 1, c_out, dtype)
                   for dtype, element_bytes, channels in ((torch.float32, 4, (64, 300, 767)),
                                                          (torch.bfloat16, 2, (300,)))
                   for c in channels for c_out in (4, 8, 16, 24, 32)]
_TINY_CHANNELS_LAST = [((128 << 20) // (c * side * side * element_bytes), c, side, side, 16, dtype)
                       for dtype, element_bytes in ((torch.float32, 4), (torch.bfloat16, 2))
                       for c in (3, 8, 16, 32, 128, 512, 2048) for side in (2, 3, 4, 5)]
# Pixels that are not whole 16-byte vectors (197 channels), after the others so that their seeds stay.
_TINY_CHANNELS_LAST += [((128 << 20) // (197 * side * side * element_bytes), 197, side, side, 16, dtype)
                        for dtype, element_bytes in ((torch.float32, 4), (torch.bfloat16, 2)) for side in (2, 3, 4, 5)]


# float64 channels-last x of 64 MiB, C 64 to 2048 on three plane shapes: where the channel-rows reader's scalar walk
# (float64 takes no vector walk: docs/limits.md section 71) stops beating torch's reduction; r23 ([15, 686, 613, 1] ->
# 3860) among them.
_FLOAT64_CHANNELS_LAST = [(max(1, (64 << 20) // (c * h * w * 8)), c, h, w, 16, torch.float64)
                          for c in (64, 128, 129, 197, 256, 320, 384, 512, 686, 1439, 2048)
                          for h, w in ((20, 20), (613, 1), (60, 60))]
# Channels-last x of few planes (B x C of 300 to 16K), 32 MiB, float64 and float32, C not a multiple of 16: where the
# planner leaves x to torch's reduction (channel_rows_suits false), which reads [1, 1439, 60, 60] float64 at 0.7 of the
# planes reader's speed (docs/limits.md sections 74 and 76).
_FEW_PLANES_CHANNELS_LAST = [(b, c, side, side, 16, dtype)
                             for dtype, element_bytes in ((torch.float64, 8), (torch.float32, 4))
                             for b in (1, 2, 4, 8) for c in (300, 700, 1439, 1999)
                             for side in [max(1, round(math.sqrt((32 << 20) / (b * c * element_bytes))))]]
_FEW_ROWS = [(b, c, 1, (32 << 20) // (4 * b * c), c_out) for b in (1, 8, 32, 128, 512) for c in (16, 128, 1024)
             for c_out in (16, 64, 256, 1024)]


def _grid_name(dims, dtype):
    suffix = "" if dtype == torch.float32 else "-" + str(dtype).split(".")[-1]
    return "x".join(map(str, dims[:4])) + f"-{dims[4]}" + suffix


ENVELOPE_GRIDS = {
    grid: {_grid_name(shape[:5], dtype): (shape[:5] + (3, 3), dtype, layout)
           for shape in shapes for dtype in [shape[5] if len(shape) == 6 else torch.float32]}
    for grid, shapes, layout in (("medium_planes", _MEDIUM_PLANES, "contiguous"),
                                 ("channels_last", _CHANNELS_LAST, "channels_last"),
                                 ("small_channels_last", _SMALL_CHANNELS_LAST, "channels_last"),
                                 ("tiny_channels_last", _TINY_CHANNELS_LAST, "channels_last"),
                                 ("float64_channels_last", _FLOAT64_CHANNELS_LAST, "channels_last"),
                                 ("few_planes_channels_last", _FEW_PLANES_CHANNELS_LAST, "channels_last"),
                                 ("narrow_columns", _NARROW_COLUMNS, "contiguous"),
                                 ("few_rows", _FEW_ROWS, "contiguous"))
}


def _random_shape(rng, elem_bytes):
    """(B, C_in, H, W, C_out, kH, kW) with bytes of x log-uniform in [8 MiB, 1 GiB] and B, C_in, plane and C_out
    log-uniform within RANDOM_LIMITS."""
    lim = RANDOM_LIMITS
    log_uniform = lambda lo, hi: int(round(math.exp(rng.uniform(math.log(lo), math.log(max(lo, hi))))))  # noqa
    elements = int(2 ** rng.uniform(math.log2(lim["min_bytes"]), math.log2(lim["max_bytes"]))) // elem_bytes
    batch = log_uniform(1, min(lim["batch"], elements))
    c_in = log_uniform(1, min(lim["c_in"], elements // batch))
    plane = min(lim["plane"], max(1, elements // (batch * c_in)))
    # A plane's aspect: mostly square-ish, sometimes a single row or column.
    shape_kind = rng.random()
    height = 1 if shape_kind < 0.1 else plane if shape_kind < 0.2 else max(1, round(plane ** rng.uniform(0.25, 0.75)))
    width = max(1, plane // height)
    # Too few bytes after the caps and rounding: more batches (within the limit), then more channels.
    for _ in range(64):
        nbytes = batch * c_in * height * width * elem_bytes
        if nbytes >= lim["min_bytes"]:
            break
        if batch < lim["batch"]:
            batch = min(lim["batch"], batch * 2)
        elif c_in < lim["c_in"]:
            c_in = min(lim["c_in"], c_in * 2)
        else:
            height *= 2
    return (batch, c_in, height, width, log_uniform(1, lim["c_out"]), rng.randint(1, 5), rng.randint(1, 5))


def random_problems(count=64, seed=2026):
    """The public sweep: {name: ((B, C_in, H, W, C_out, kH, kW), dtype, layout)}, RANDOM_CORNERS first, the rest
    drawn from `seed`. The same seed gives the same problems on every machine (Python's own generator)."""
    rng = random.Random(seed)
    problems = {}
    for index in range(count):
        dtype = RANDOM_DTYPES[index % len(RANDOM_DTYPES)]
        layout = RANDOM_LAYOUTS[(index // len(RANDOM_DTYPES)) % len(RANDOM_LAYOUTS)]
        elem_bytes = torch.empty((), dtype=dtype).element_size()
        if index < len(RANDOM_CORNERS):
            shape = RANDOM_CORNERS[index]
        else:
            shape = _random_shape(rng, elem_bytes)
        problems[f"r{index:02d}"] = (shape, dtype, layout)
    return problems


def sweep_layout(x, layout, seed=0):
    """x laid out as the sweep's layouts name: the RANDOM_LAYOUTS beside helpers.lay_out's. sliced_hw: W contiguous,
    rows strided (x[:, :, 1:, 2:] of a bigger tensor); sliced_bc: whole planes, batch or channel strides not those
    of a contiguous tensor (x[:, 1:C+1] of a bigger tensor, or every other batch)."""
    if layout == "sliced_hw":
        b, c, h, w = x.shape
        big = torch.empty(b, c, h + 1, w + 2, dtype=x.dtype, device=x.device)
        view = big[:, :, 1:, 2:]
    elif layout == "sliced_bc":
        b, c, h, w = x.shape
        if seed % 2:
            view = torch.empty(2 * b, c, h, w, dtype=x.dtype, device=x.device)[::2]
        else:
            view = torch.empty(b, c + 2, h, w, dtype=x.dtype, device=x.device)[:, 1:c + 1]
    else:
        return lay_out(x, layout)
    view.copy_(x)
    return view


def make_random_inputs(problem, index=0, device="cuda"):
    """(x, weight, conv_bias, bias) of a random-sweep problem: make_problem's values (each plane its own offset and
    scale) in the problem's layout."""
    shape, dtype, layout = problem
    base = "contiguous" if layout.startswith("sliced") else layout
    x, weight, conv_bias, bias = make_problem(*shape, dtype=dtype, device=device, layout=base, seed=index,
                                              draw_on_device=True)
    if layout.startswith("sliced"):
        x = sweep_layout(x, layout, seed=index)
    return x, weight, conv_bias, bias
