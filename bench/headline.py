"""make run: the fused op against the reference model and its rivals on the headline problem.

On a CUDA GPU with fusedlse's CUDA backend: 16x64x512x512 -> 128, k=3, float32 (1 GiB of x), each provider timed
with CUDA events (triton.testing.do_bench: median, L2 flushed before each run). Otherwise the first line says which
of the two is missing, and the CPU path runs on 4x64x64x64 -> 128 (the headline's channels and kernel, 4 MiB of x),
timed on the host: the best of 11 batches of about 0.1 s each, the providers' batches interleaved.

Prints each provider's first outputs, its error against the real model computed in float64, its time per call,
the effective bandwidth (bytes of x / time) and its speed-up over the reference model.
"""
import os
import platform
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fusedlse_cuda  # noqa: E402
from fusedlse_cuda import reference  # noqa: E402
from problems import HEADLINE_ON_CPU, SWEEP, cuda_missing, describe, make_inputs, make_problem, rel_err  # noqa: E402
from timing import host_best_ms, median_ms  # noqa: E402


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        return names[0] if names else platform.processor() or "CPU"
    except OSError:
        return platform.processor() or "CPU"


def _gbps(nbytes, ms):
    """Bytes per time in GB/s, with three significant figures at any size."""
    gbps = nbytes / ms / 1e6
    return f"{gbps:.0f}" if gbps >= 100 else f"{gbps:.3g}"


def main():
    missing = cuda_missing()
    if missing is None:
        shape = SWEEP["headline"][0]
        args = make_inputs("headline")
        truth = reference.model_forward(*(t.double() for t in args))  # the real model, float64, on the GPU
        device = f"{torch.cuda.get_device_name()} (CUDA events, median, L2 flushed)"
    else:
        shape = HEADLINE_ON_CPU
        print(f"{missing[0].upper()}{missing[1:]}: running the CPU path.")
        args = make_problem(*shape)
        truth = reference.truth(*args)
        device = f"{_cpu_name()}, {torch.get_num_threads()} threads (host clock, best of 11 interleaved batches)"
    x, weight, conv_bias, bias = args
    providers = {"reference model (eager)": lambda: reference.model_forward(*args),
                 "fusedlse_cuda.forward": lambda: fusedlse_cuda.forward(*args),
                 "algebraic shortcut (eager)": lambda: reference.shortcut(*args)}
    if missing is None:
        from triton_ref import seed

        providers["seed Triton"] = lambda: seed.forward(*args)
        try:
            from triton_ref import tuned

            providers["tuned Triton"] = lambda: tuned.forward(*args)
        except ImportError:
            pass
    ceiling = "torch x.sum(dim=(2,3)) (the read alone, not a forward)"
    providers[ceiling] = lambda: x.sum(dim=(2, 3))

    nbytes = x.numel() * x.element_size()
    print(f"problem: {describe(shape)}, {str(x.dtype).split('.')[-1]}, x = {nbytes / 2**20:.0f} MiB")
    print(f"device: {device}")
    print(f"float64 truth (real model), first rows: {', '.join(f'{v:.4f}' for v in truth.flatten()[:4].tolist())}")
    print(f"{'provider':55s} {'out[:2]':>18s} {'rel err':>8s} {'ms/call':>9s} {'GB/s':>6s} {'vs model':>8s}")
    outputs = {label: fn() for label, fn in providers.items()}
    if missing is None:
        times = {label: median_ms(fn) for label, fn in providers.items()}
    else:
        times = host_best_ms(providers)
    model_ms = times["reference model (eager)"]
    for label, out in outputs.items():
        if label == ceiling:
            shown, err, speedup = "-", "-", "-"
        else:
            shown = ", ".join(f"{v:.3f}" for v in out.flatten()[:2].tolist())
            err = f"{rel_err(out, truth):8.1e}"
            speedup = f"{model_ms / times[label]:7.1f}x"
        ms = times[label]
        print(f"{label:55s} {shown:>18s} {err:>8s} {ms:9.4f} {_gbps(nbytes, ms):>6s} {speedup:>8s}")


if __name__ == "__main__":
    main()
