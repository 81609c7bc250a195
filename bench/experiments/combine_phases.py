"""Where the headline's padded tail spends its time, warp by warp (docs/limits.md section 78): a build with
combine_phases.patch (`git apply` on 6d9b36c) stamps each combining warp's steps (start, weight staged, wait
returned, cells, taps, shares, end) and each logsumexp block's (start, steps 1 and 2: biases staged and wait
returned with FUSEDLSE_EARLY_BIAS=1, else the other way round; shares loaded, logsumexp, end) with %globaltimer into
a buffer it writes to FUSEDLSE_TRACE_FILE after the call. For each value of the build's run-time switch this prints
do_bench's time and, for one call after an L2 flush, the percentiles of each step in microseconds from the first
warp's return from its wait (about when the reader's grid has ended). The patch's switches: FUSEDLSE_SKIP (bits: 1
no shares, 2 no taps, 4 no loads of the cells, 8 no divisions: wrong outputs, times only), FUSEDLSE_SPREAD (at most
N combining blocks an SM, by their shared memory), FUSEDLSE_EARLY_BIAS (1: the logsumexp's biases staged before its
wait).

    python3 bench/experiments/combine_phases.py [VARIABLE=V1,V2,...] [--paddings 1,3]   # GPU, patched build
"""
import os
import sys
import tempfile

import numpy as np
import torch
import triton.testing

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fusedlse_cuda  # noqa: E402
from call_timeline import l2_flush_buffers, switch_parser, switch_settings  # noqa: E402
from problems import make_inputs, require_cuda  # noqa: E402

COMBINE_STEPS = ["start", "staged", "waited", "cells", "taps", "shares", None, "end"]  # slot 6: the SM
LSE_STEPS = ["start", "step 1", "step 2", "loaded", "lse", None, "end"]  # steps: see the docstring


def percentiles(values):
    return " ".join(f"{np.percentile(values, q):7.2f}" for q in (0, 10, 50, 90, 100))


def traced_call(call, flush_from, flush_to, path):
    """One call after an L2 flush with the trace on: (combine [warps, 8], logsumexp [blocks, 8]) in nanoseconds."""
    flush_to.copy_(flush_from)
    os.environ["FUSEDLSE_TRACE_FILE"] = path
    try:
        call()
    finally:
        del os.environ["FUSEDLSE_TRACE_FILE"]
    stamps = np.fromfile(path, dtype=np.uint64).astype(np.float64)
    combine = stamps[: 1 << 20].reshape(-1, 8)
    lse = stamps[1 << 20:].reshape(-1, 8)
    combine, lse = combine[combine[:, 0] > 0], lse[lse[:, 0] > 0]
    combine[:, :6] %= 1 << 32  # 32-bit stamps in the combine (its registers), 64-bit in the logsumexp
    combine[:, 7] %= 1 << 32
    lse[:, :7] %= 1 << 32
    return combine, lse


def main():
    args = switch_parser(__doc__, "1,3").parse_args()
    require_cuda("bench/experiments/combine_phases.py")
    variable, values = switch_settings(args.switch)
    flush_from, flush_to = l2_flush_buffers()
    x, weight, conv_bias, bias = make_inputs("headline")
    path = os.path.join(tempfile.mkdtemp(), "trace.bin")
    for padding in [int(p) for p in args.paddings.split(",")]:
        for value in values:
            if value is not None:
                os.environ[variable] = value
            call = lambda: fusedlse_cuda.forward(x, weight, conv_bias, bias, padding=padding)  # noqa: E731
            call()
            us = triton.testing.do_bench(call, warmup=25, rep=200, return_mode="median") * 1e3
            combine, lse = traced_call(call, flush_from, flush_to, path)
            origin = combine[:, 2].min()
            label = f"padding {padding}" + (f" {variable}={value}" if value is not None else "")
            print(f"== {label}: do_bench {us:.1f} us; {len(combine)} combining warps on {len(set(combine[:, 6]))} "
                  f"SMs, {len(lse)} logsumexp blocks; us from the first wait's return (min p10 p50 p90 max)")
            for column, step in enumerate(COMBINE_STEPS):
                if step:
                    print(f"   combine {step:7s} {percentiles((combine[:, column] - origin) / 1e3)}")
            for column, step in enumerate(LSE_STEPS):
                if step:
                    print(f"   lse     {step:7s} {percentiles((lse[:, column] - origin) / 1e3)}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
