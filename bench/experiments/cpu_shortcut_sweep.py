"""The CPU backend against the plain-torch shortcut (reference.tap_shortcut, eager) on the public sweep's problems
scaled to a CPU: B, then H, then W cut until x holds at most TARGET_MB MiB (8 by default), everything else (C_in,
C_out, kernel, dtype, layout) the problem's. Times: timing.host_best_ms (ours and the shortcut interleaved, the best
of 5 batches of about 0.05 s each), torch's threads as set.

    PYTHONPATH=python:. python3 bench/experiments/cpu_shortcut_sweep.py [p1,p2,p3] [r13,r45]   # variants, problems

Prints one line per problem (ours / shortcut in ms, LOSS where ours is over 1.1 times the shortcut) and writes the
rows to $OUTJSON (/tmp/cpu_shortcut_sweep.json by default). docs/limits.md §87 has its runs: this machine's timings
move by 2x between processes, so compare builds in alternating processes and read the ranges."""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import fusedlse_cuda  # noqa: E402
from fusedlse_cuda import reference  # noqa: E402
from padding_groups import VARIANTS, allowed, variant_inputs  # noqa: E402
from problems import make_random_inputs, random_problems  # noqa: E402
from timing import host_best_ms  # noqa: E402

TARGET = int(float(os.environ.get("TARGET_MB", "8")) * 2**20)


def scaled(shape, dtype):
    batch, c_in, height, width, c_out, kh, kw = shape
    size = torch.empty((), dtype=dtype).element_size()
    batch = max(1, min(batch, TARGET // (c_in * height * width * size)))
    if batch * c_in * height * width * size > TARGET:
        height = max(1, TARGET // (batch * c_in * width * size))
    if batch * c_in * height * width * size > TARGET:
        width = max(1, TARGET // (batch * c_in * height * size))
    return batch, c_in, height, width, c_out, kh, kw


def main():
    variants = sys.argv[1].split(",") if len(sys.argv) > 1 else ["p1", "p2", "p3"]
    only = sys.argv[2].split(",") if len(sys.argv) > 2 else None
    rows = []
    for name, (shape, dtype, layout) in random_problems().items():
        if only and name not in only:
            continue
        shape = scaled(shape, dtype)
        x, weight, conv_bias, bias = make_random_inputs((shape, dtype, layout), index=int(name[1:]), device="cpu")
        cells = []
        with torch.no_grad():
            for variant in ["p0"] + variants:
                settings = VARIANTS.get(variant, {})
                if not allowed(shape, settings):
                    cells.append(f"{variant} -")
                    continue
                args = variant_inputs(x, weight, conv_bias, bias, settings)
                times = host_best_ms({"ours": lambda: fusedlse_cuda.forward(*args, **settings),
                                      "shortcut": lambda: reference.tap_shortcut(*args, **settings)},
                                     rounds=5, batch_s=0.05)
                ours, shortcut = times["ours"], times["shortcut"]
                cells.append(f"{variant} {ours:.2f}/{shortcut:.2f}" + (" LOSS" if ours > 1.1 * shortcut else ""))
                rows.append(dict(name=name, variant=variant, shape=list(shape), dtype=str(dtype), layout=layout,
                                 ours_ms=ours, shortcut_ms=shortcut))
        print(name, shape, str(dtype).replace("torch.", ""), layout, " | ".join(cells), flush=True)
    with open(os.environ.get("OUTJSON", "/tmp/cpu_shortcut_sweep.json"), "w") as f:
        json.dump(rows, f)


if __name__ == "__main__":
    main()
