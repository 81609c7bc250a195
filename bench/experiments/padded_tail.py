"""Where the headline's padded forward spends its time after the reader (docs/limits.md section 77): each call after a
256 MB copy (an L2 flush), 15 calls under torch.profiler, and for each kernel its start and end in microseconds from
the call's first kernel (medians over the calls), with do_bench's time of the call. An experiment build's run-time
switch, an environment variable read on every call (the patches of section 77: FUSEDLSE_TAP_FINISH in
finish_in_reader.patch), is set to each of the given values in turn.

    python3 bench/experiments/padded_tail.py [VARIABLE=V1,V2,...] [--paddings 1,2,3] [--dtype float32]   # GPU
"""
import os
import sys

import torch
import triton.testing

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fusedlse_cuda  # noqa: E402
from call_timeline import call_spans, l2_flush_buffers, switch_parser, switch_settings  # noqa: E402
from problems import make_inputs, require_cuda  # noqa: E402


def spans(call, flush_from, flush_to, calls=15):
    """call_spans of `calls` calls, each after a copy of flush_from into flush_to."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            flush_to.copy_(flush_from)
            call()
        torch.cuda.synchronize()
    return call_spans(prof, lambda name: "copy" in name.lower())


def main():
    parser = switch_parser(__doc__, "1,2,3")
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()
    require_cuda("bench/experiments/padded_tail.py")
    variable, values = switch_settings(args.switch)
    flush_from, flush_to = l2_flush_buffers()
    x, weight, conv_bias, bias = (t.to(getattr(torch, args.dtype)) for t in make_inputs("headline"))
    for padding in [0] + [int(p) for p in args.paddings.split(",")]:
        for value in (values if padding else [None]):
            if value is not None:
                os.environ[variable] = value
            call = lambda: fusedlse_cuda.forward(x, weight, conv_bias, bias, padding=padding)  # noqa: E731
            call()
            torch.cuda.synchronize()
            call_us = triton.testing.do_bench(call, warmup=25, rep=200, return_mode="median") * 1000
            kernels, span = spans(call, flush_from, flush_to)
            label = f"padding {padding}" + (f" {variable}={value}" if value is not None else "")
            print(f"== {label}  do_bench {call_us:.1f} us  span {span:.1f}", flush=True)
            for (_, name), (begin, end) in sorted(kernels.items()):
                print(f"   {begin:7.1f} -> {end:7.1f} ({end - begin:6.1f})  {name}", flush=True)


if __name__ == "__main__":
    main()
