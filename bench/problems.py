"""The benchmark sweep: named problems, their inputs, the providers that compute the forward, and the one check
every GPU-only script makes first.

Shapes are written in tests/helpers.py's order, (B, C_in, H, W, C_out, kH, kW), and inputs come from its
make_problem: one input generator and one error measure (rel_err) for tests and benchmarks.
"""
import functools
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
import fusedlse_cuda  # noqa: E402
from fusedlse_cuda import reference  # noqa: E402
from helpers import SHAPE_FIELDS, make_problem, rel_err  # noqa: E402,F401  (rel_err: for the scripts)

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
