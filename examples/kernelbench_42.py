"""KernelBench level 2, problem 42 (ConvTranspose2d_GlobalAvgPool_BiasAdd_LogSumExp_Sum_Multiply) with fusedlse.

Laid out as KernelBench's harness loads a problem: `Model`, `ModelNew`, `get_inputs`, `get_init_inputs` and the
problem's sizes at module level. `Model` is the reference; `ModelNew` takes the same constructor arguments, holds
equal parameters after the same seed, and runs the fused one-pass forward.

    python examples/kernelbench_42.py     # checks ModelNew against Model and times both (CUDA if present)
"""
import torch

import fusedlse_cuda
from fusedlse_cuda import ModelNew  # noqa: F401  (what the harness looks up)
from fusedlse_cuda.reference import Model  # noqa: F401

batch_size = 16
in_channels = 64
out_channels = 128
height = width = 512
kernel_size = 3
bias_shape = (out_channels, 1, 1)


def get_inputs():
    return [torch.rand(batch_size, in_channels, height, width)]


def get_init_inputs():
    return [in_channels, out_channels, kernel_size, bias_shape]


def main():
    global batch_size, height, width
    if not torch.cuda.is_available():
        why = "no CUDA GPU found"
    elif not fusedlse_cuda.cuda_backend_built():
        why = "fusedlse_cuda was built without its CUDA backend"
    else:
        why = None
    device = "cpu" if why else "cuda"
    if why:  # the reference's full transposed convolution at 16x64x512x512 takes minutes on a CPU
        batch_size, height, width = 4, 64, 64
        print(f"{why}: CPU path at {batch_size}x{in_channels}x{height}x{width}")
    torch.manual_seed(0)
    model = Model(*get_init_inputs()).to(device)
    torch.manual_seed(0)
    model_new = ModelNew(*get_init_inputs()).to(device)
    (x,) = [t.to(device) for t in get_inputs()]
    with torch.no_grad():
        want, got = model(x), model_new(x)
    print(f"max |ModelNew - Model| = {(got - want).abs().max().item():.3g} (output ~{want.abs().mean().item():.3g})")
    if device == "cuda":
        import triton.testing

        for name, module in (("Model", model), ("ModelNew", model_new)):
            with torch.no_grad():
                ms = triton.testing.do_bench(lambda: module(x), return_mode="median")
            print(f"{name:8s} {ms * 1e3:9.1f} us")


if __name__ == "__main__":
    main()
