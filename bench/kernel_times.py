"""Where a forward's time goes: the fused kernel's own duration (torch.profiler/CUPTI) against the event-timed
call (do_bench, which also counts any host time the GPU waits through), the same launch without the GEMM +
logsumexp epilogue (sum_hw), and the host time per call.

python bench/kernel_times.py [shape ...]
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fusedlse_cuda  # noqa: E402
from problems import SWEEP, make_inputs, require_cuda  # noqa: E402
from timing import median_ms  # noqa: E402


def kernel_us(fn, reps=20):
    fn()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
    times = {}
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            times.setdefault(event.name, []).append(event.device_time)
    return {name: sorted(v)[len(v) // 2] for name, v in times.items()}


def host_us(fn, calls=500):
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    elapsed = time.perf_counter() - start
    torch.cuda.synchronize()
    return elapsed * 1e6 / calls


def main(names):
    require_cuda("bench/kernel_times.py")
    for name in names:
        args = make_inputs(name)
        x = args[0]
        call = lambda: fusedlse_cuda.forward(*args)  # noqa: E731
        summed = lambda: x.sum(dim=(2, 3))  # noqa: E731
        kernels = kernel_us(call)
        sums_only_us = median_ms(lambda: fusedlse_cuda.sum_hw(x)) * 1000
        print(f"{name:16s} do_bench {median_ms(call) * 1000:8.1f} us (sum_hw alone {sums_only_us:.1f} us)  "
              f"host {host_us(call):6.1f} us/call  "
              f"kernels: " + ", ".join(f"{k[:40]} {v:.1f} us" for k, v in kernels.items()) +
              f"  | torch sum do_bench {median_ms(summed) * 1000:.1f} us, host {host_us(summed):.1f} us/call")
        del args, x
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main(sys.argv[1:] or list(SWEEP))
