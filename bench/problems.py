"""The benchmark sweep: named problems, their inputs, and the providers that compute the forward."""
import functools

import torch

import fusedlse_cuda
from fusedlse_cuda import reference

# name: (B, C_in, C_out, H, W, k, dtype, layout)
SWEEP = {
    "headline": (16, 64, 128, 512, 512, 3, torch.float32, "contiguous"),
    "headline_bf16": (16, 64, 128, 512, 512, 3, torch.bfloat16, "contiguous"),
    "headline_fp16": (16, 64, 128, 512, 512, 3, torch.float16, "contiguous"),
    "headline_nhwc": (16, 64, 128, 512, 512, 3, torch.float32, "channels_last"),
    "kb_old": (128, 3, 16, 32, 32, 3, torch.float32, "contiguous"),
    "skinny": (1, 4, 128, 2048, 2048, 3, torch.float32, "contiguous"),
    "short_rows": (256, 512, 256, 16, 16, 3, torch.float32, "contiguous"),
    "mid": (32, 128, 256, 128, 128, 3, torch.float32, "contiguous"),
    "odd509": (16, 64, 128, 509, 509, 3, torch.float32, "contiguous"),
}
# Cost against bytes: 16 MiB per batch row of 64 x 256 x 256 float32, 1 to 64 rows.
for _batch in (1, 2, 4, 8, 16, 32, 64):
    SWEEP[f"grow_{_batch * 64 * 256 * 256 * 4}"] = (_batch, 64, 128, 256, 256, 3, torch.float32, "contiguous")


def make_inputs(name, device="cuda", seed=0):
    batch, c_in, c_out, height, width, k, dtype, layout = SWEEP[name]
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(batch, c_in, height, width, device=device, dtype=dtype, generator=g)
    x += torch.randn(batch, c_in, 1, 1, device=device, dtype=dtype, generator=g)  # per-row offsets
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(c_in, c_out, k, k, device=device, dtype=dtype, generator=g) / (c_in * k * k) ** 0.5
    conv_bias = torch.randn(c_out, device=device, dtype=dtype, generator=g)
    bias = torch.randn(c_out, 1, 1, device=device, dtype=dtype, generator=g)
    return x, weight, conv_bias, bias


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
