"""Where a forward's time goes, kernel by kernel, on the public sweep's rows (docs/limits.md section 68): each call
after a 256 MB fill (an L2 flush, as do_bench's), 15 calls under torch.profiler, and for each kernel of a call its
start and end in microseconds from the call's first kernel (medians over the calls); with do_bench's time of the call,
the host's time per call, and the plan explain() gives.

    python3 bench/experiments/call_timeline.py r23,r43:tiled_lse,r23:channel_rows:   # GPU, from the repository root

A row may name a forced split plan as ROW:READER:EPILOGUE (planning.READERS, planning.EPILOGUES; empty: the
planner's).
"""
import argparse
import contextlib
import os
import statistics
import sys
import time

import torch
import triton.testing

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import fusedlse_cuda  # noqa: E402
from fusedlse_cuda import planning  # noqa: E402
from problems import make_random_inputs, random_problems, require_cuda  # noqa: E402


def plan_text(args):
    plan = fusedlse_cuda.explain(args[0], args[1])
    return "/".join(str(plan.get(key)) for key in ("strategy", "reader", "epilogue"))


def switch_parser(doc, paddings):
    """The command line of the scripts for an experiment build (padded_tail.py, combine_phases.py): its run-time
    switch VARIABLE=V1,V2,... and --paddings."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("switch", nargs="?", default="", help="VARIABLE=V1,V2,...: an experiment build's switch")
    parser.add_argument("--paddings", default=paddings)
    return parser


def switch_settings(switch):
    """(variable, values) of VARIABLE=V1,V2,...; ("", [None]) without a switch."""
    if not switch:
        return "", [None]
    variable, values = (switch.split("=") + [""])[:2]
    return variable, values.split(",")


def l2_flush_buffers():
    """Two 256 MB buffers on the GPU: a copy of one into the other flushes the L2."""
    flush_from = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    return flush_from, torch.empty_like(flush_from)


def call_spans(prof, is_flush):
    """({(index, kernel name): (start, end)}, span): the CUDA kernels `prof` recorded, a call being the kernels after
    each flush (a kernel whose name is_flush), each kernel's start and end in microseconds from its call's first
    kernel and the call's span, medians over the calls."""
    kernels = sorted((e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA),
                     key=lambda e: e.time_range.start)
    calls, current = [], None
    for event in kernels:
        if is_flush(event.name):  # a new call starts after it
            current = []
            calls.append(current)
        elif current is not None:
            current.append(event)
    spans, times = [], {}
    for events in filter(None, calls):
        first = min(e.time_range.start for e in events)
        spans.append(max(e.time_range.end for e in events) - first)
        for i, e in enumerate(events):
            times.setdefault((i, e.name[:70]), []).append((e.time_range.start - first, e.time_range.end - first))
    medians = {key: (statistics.median(a for a, _ in v), statistics.median(b for _, b in v))
               for key, v in times.items()}
    return medians, statistics.median(spans)


def main(specs):
    require_cuda("bench/experiments/call_timeline.py")
    problems = random_problems()
    names = list(problems)
    flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    for spec in specs:
        row, reader, epilogue = (spec.split(":") + ["", ""])[:3]
        args = make_random_inputs(problems[row], names.index(row))
        forced = (planning.forced_plan("split", reader or None, epilogue or None) if reader or epilogue
                  else contextlib.nullcontext())
        with forced:
            call = lambda: fusedlse_cuda.forward(*args)  # noqa: E731
            call()
            torch.cuda.synchronize()
            call_us = triton.testing.do_bench(call, warmup=25, rep=150, return_mode="median") * 1000
            start = time.perf_counter()
            for _ in range(200):
                call()
            host_us = (time.perf_counter() - start) / 200 * 1e6
            torch.cuda.synchronize()
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
                for _ in range(15):
                    flush.zero_()
                    call()
                torch.cuda.synchronize()
            plan = plan_text(args)
        times, span = call_spans(prof, lambda name: "fill" in name.lower())
        print(f"== {spec}  do_bench {call_us:.1f} us  host {host_us:.1f} us/call  gpu span "
              f"{span:.1f} us  plan {plan}", flush=True)
        for (_, name), (begin, end) in sorted(times.items()):
            print(f"   {begin:7.1f} -> {end:7.1f} ({end - begin:6.1f})  {name}", flush=True)
        del args
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main(sys.argv[1].split(",") if len(sys.argv) > 1 else ["r23", "r43", "r27"])
