"""Where a padded forward's time goes: torch.profiler's CUDA kernels of one forward without the sums (no input
requires grad: keep_sums False), at padding 0 and at each padding asked for, on sweep rows and the headline. Per row
and padding: every kernel's duration in us in launch order, their sum, and for padding > 0 explain()'s tap_sums path,
whole_planes, gemm_over and the GEMM's strategy, reader and epilogue. The tables of docs/limits.md §60 come from it.
Run on a GPU:

    python3 bench/experiments/padded_kernels.py [--rows r10,r20,headline] [--paddings 1,3]

Kernel times under the profiler, one call each after three warm-ups: for where the time goes, not for ratios (those
are bench/padding_groups.py's)."""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from problems import make_inputs, make_random_inputs, random_problems  # noqa: E402

import fusedlse_cuda  # noqa: E402

SAMPLE = "r10,r20,r25,r30,r35,r40,r45,r50,r55,r60,headline"  # bench/padding_groups.py --every 5's rows


def kernels(inputs, padding):
    """[(start us, duration us, name)] of one forward's CUDA kernels, in launch order."""
    for _ in range(3):
        fusedlse_cuda.forward(*inputs, padding=padding)
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        fusedlse_cuda.forward(*inputs, padding=padding)
        torch.cuda.synchronize()
    events = sorted((e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA),
                    key=lambda e: e.time_range.start)
    first = events[0].time_range.start if events else 0
    return [(e.time_range.start - first, e.time_range.elapsed_us(), e.name) for e in events]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default=SAMPLE, help="comma-separated sweep rows (r00..r63) and 'headline'")
    parser.add_argument("--paddings", default="1", help="comma-separated paddings beside 0")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("padded_kernels.py needs a CUDA GPU")
    problems = random_problems()
    names = list(problems)
    for row in args.rows.split(","):
        if row != "headline" and row not in problems:
            sys.exit(f"--rows: expected sweep rows r00..r{len(names) - 1:02d} or 'headline', got {row!r}")
        inputs = make_inputs("headline") if row == "headline" else make_random_inputs(problems[row], names.index(row))
        x, weight = inputs[0], inputs[1]
        for padding in [0] + [int(p) for p in args.paddings.split(",")]:
            try:
                listed = kernels(inputs, padding)
            except (RuntimeError, ValueError) as error:  # a padding that crops the whole output
                print(f"{row} padding {padding}: {type(error).__name__}: {str(error).splitlines()[0]}")
                continue
            print(f"{row} {tuple(x.shape)} {x.dtype} k{tuple(weight.shape[2:])} C_out {weight.shape[1]} "
                  f"padding {padding}: kernels {sum(d for _, d, _ in listed):.1f} us")
            for start, duration, name in listed:
                print(f"  +{start:8.1f} {duration:8.1f}  {name[:100]}")
            if padding:
                plan = fusedlse_cuda.explain(x, weight, padding=padding)
                gemm = plan.get("gemm", {})
                print("  plan:", plan.get("tap_sums"), plan.get("whole_planes"), plan.get("gemm_over"),
                      gemm.get("strategy"), gemm.get("reader"), gemm.get("epilogue"))
        del inputs, x, weight
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
