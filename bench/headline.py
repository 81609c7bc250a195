"""The main job: the fused op against the reference model and its rivals on the headline problem.

B=16, C_in=64, C_out=128, H=W=512, k=3, float32 on a GPU. Without one, the CPU path on a smaller problem.
Prints each provider's result, its error against the real model run in float64, and its time.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fusedlse_cuda  # noqa: E402
from fusedlse_cuda import reference  # noqa: E402


def rel_err(out, truth):
    out, truth = out.double().cpu(), truth.double().cpu()
    return ((out - truth).abs().max() / truth.abs().max()).item()


def main():
    on_gpu = torch.cuda.is_available() and fusedlse_cuda.cuda_backend_built()
    if on_gpu:
        from problems import make_inputs
        from timing import median_ms

        device, name = "cuda", torch.cuda.get_device_name()
        x, weight, conv_bias, bias = make_inputs("headline")
        truth = reference.model_forward(x.double(), weight.double(), conv_bias.double(), bias.double())
        timer = median_ms
    else:
        import time

        device, name = "cpu", "CPU"
        print("No CUDA GPU found (or fusedlse_cuda was built without CUDA): running the CPU path on 4x16x64x64.")
        g = torch.Generator().manual_seed(0)
        x = torch.randn(4, 16, 64, 64, generator=g) + torch.randn(4, 16, 1, 1, generator=g)
        weight = torch.randn(16, 32, 3, 3, generator=g) / 12
        conv_bias, bias = torch.randn(32, generator=g), torch.randn(32, 1, 1, generator=g)
        truth = reference.truth(x, weight, conv_bias, bias)

        def timer(fn, reps=20):
            fn()
            start = time.perf_counter()
            for _ in range(reps):
                fn()
            return (time.perf_counter() - start) * 1000 / reps

    providers = {"fusedlse_cuda.forward": lambda: fusedlse_cuda.forward(x, weight, conv_bias, bias),
                 "reference model (eager)": lambda: reference.model_forward(x, weight, conv_bias, bias),
                 "algebraic shortcut (eager)": lambda: reference.shortcut(x, weight, conv_bias, bias)}
    if on_gpu:
        from triton_ref import seed

        providers["seed Triton"] = lambda: seed.forward(x, weight, conv_bias, bias)
        try:
            from triton_ref import tuned

            providers["tuned Triton"] = lambda: tuned.forward(x, weight, conv_bias, bias)
        except ImportError:
            pass
        providers["torch x.sum(dim=(2,3)) (ceiling, not a forward)"] = lambda: x.sum(dim=(2, 3))
    x_bytes = x.numel() * x.element_size()
    print(f"device: {name}; x {tuple(x.shape)} {str(x.dtype).split('.')[-1]}, {x_bytes / 2**20:.0f} MiB")
    print(f"float64 truth (real model), first rows: {truth.flatten()[:4].tolist()}")
    print(f"{'provider':50s} {'out[:2]':>24s} {'rel err':>9s} {'time ms':>9s} {'GB/s':>7s}")
    for label, fn in providers.items():
        out = fn()
        err = rel_err(out, truth) if out.shape == truth.shape else float("nan")
        shown = ", ".join(f"{v:.4f}" for v in out.flatten()[:2].tolist()) if out.shape == truth.shape else "-"
        ms = timer(fn)
        print(f"{label:50s} {shown:>24s} {err:9.1e} {ms:9.4f} {x_bytes / ms / 1e6:7.0f}")


if __name__ == "__main__":
    main()
