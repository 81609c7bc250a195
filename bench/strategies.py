"""Every strategy and reader of the CUDA forward, forced one at a time, on the random sweep and the named problems:
the data behind the planner's cost model (csrc/plan.cpp), and a check of its choices.

    python bench/strategies.py [--count 64] [--only r03,headline] [--out FILE.json]   # GPU: measure, write FILE.md too
    python bench/strategies.py --grid channels_last [--out FILE.json]                  # a grid of problems.py's
                                                                                       # ENVELOPE_GRIDS instead
    python bench/strategies.py --render FILE.json                                     # rewrite FILE.md from FILE.json
    python bench/strategies.py --epilogues ...                                        # only the split epilogues

Per problem: the time of the planner's choice ("auto"), of the fused launch, of the split strategy with each reader
that applies, and of the plain-torch shortcut, each with its error against the float64 shortcut; then what the
planner chose, what it predicted, and how far its choice is from the fastest option measured.
"""
import argparse
import contextlib
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fusedlse_cuda  # noqa: E402
from fusedlse_cuda import reference  # noqa: E402
from fusedlse_cuda.planning import explain, forced_plan  # noqa: E402
from problems import (ENVELOPE_GRIDS, SWEEP, make_inputs, make_random_inputs, random_problems, rel_err,  # noqa: E402
                      require_cuda)
from sweep import shortcut_f64, time_ms  # noqa: E402


def options(x, weight, epilogues_only=False):
    """(label, strategy, reader, epilogue) to time for x and weight; strategy None: the planner's choice; reader or
    epilogue None: the planner's for that part. epilogues_only: the planner's choice and the split strategy with each
    epilogue, its reader the planner's."""
    found = [("auto", None, None, None)]
    if not epilogues_only:
        found.append(("fused", "fused", None, None))
        found.append(("split_planes", "split", "planes", None))
        found.append(("split_lanes", "split", "plane_lanes", None))
        found.append(("split_torch", "split", "torch_sum", None))
        if x.size(1) > 1 and x.stride(1) == 1:  # channels adjacent: the channel-rows reader applies
            found.append(("split_rows", "split", "channel_rows", None))
    found += [(f"split_{e.split('_')[0]}", "split", None, e) for e in ("tiled_lse", "cublas_lse", "gemv_lse")]
    # The planner runs the tiled epilogue where the rows or the narrow one cannot.
    for epilogue in ("rows_lse", "narrow_lse"):
        with forced_plan("split", None, epilogue):
            if explain(x, weight)["epilogue"] == epilogue:
                found.append((f"split_{epilogue}", "split", None, epilogue))
    return found


def time_forward(row, label, args, truth, plan=None):
    """row["times"][label] and row["errors"][label]: the forward's time on args under `plan` ((strategy, reader,
    epilogue), for planning.forced_plan; None: the planner's) and its error against `truth`, or the error's message
    where it fails (a row's entry, not the end of the run)."""
    fn = lambda: fusedlse_cuda.forward(*args)  # noqa: E731
    try:
        with forced_plan(*plan) if plan else contextlib.nullcontext():
            out = fn()
            row["times"][label] = time_ms(fn)
        row["errors"][label] = rel_err(out, truth)
    except Exception as error:  # noqa: BLE001
        row["errors"][label] = f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
        torch.cuda.synchronize()


def measure(name, args, index, epilogues_only=False):
    x = args[0]
    truth = shortcut_f64(*args)
    plan = explain(x, args[1])
    row = dict(shape=name, dims=list(x.shape) + [args[1].shape[1]], dtype=str(x.dtype).split(".")[-1],
               strides=list(x.stride()), bytes=x.numel() * x.element_size(), plan=plan, times={}, errors={})
    for label, strategy, reader, epilogue in options(x, args[1], epilogues_only):
        time_forward(row, label, args, truth, None if strategy is None else (strategy, reader, epilogue))
    fn = lambda: reference.shortcut(*args)  # noqa: E731
    fn()
    row["times"]["shortcut"] = time_ms(fn)
    flat = torch.empty(x.numel(), dtype=x.dtype, device=x.device).normal_()
    flat.sum()
    row["times"]["read_floor"] = time_ms(lambda: flat.sum())
    return row


OPTIONS = ("auto", "fused", "split_planes", "split_lanes", "split_torch", "split_rows", "split_tiled", "split_cublas",
           "split_gemv", "split_rows_lse", "split_narrow_lse", "shortcut", "read_floor")


def markdown(rows):
    """Every problem's times (us) per option, the planner's choice when measured, and the fastest option."""
    lines = ["Times in us (CUDA events, median, L2 flushed); `auto` is the planner of the build measured, the others "
             "forced (planning.forced_plan). read_floor: torch's flat `t.sum()` over x's bytes.", "",
             "| problem | dims (B, C_in, H, W, C_out) | dtype | layout | MiB | " + " | ".join(OPTIONS)
             + " | fastest |", "|---|---|---|---|---|" + "---|" * (len(OPTIONS) + 1)]
    for r in rows:
        t = r["times"]
        forced = {k: v for k, v in t.items() if k in OPTIONS[1:11]}
        fastest = min(forced, key=forced.get)
        cells = [f"{t[k] * 1000:.1f}" if k in t else "-" for k in OPTIONS]
        lines.append(f"| {r['shape']} | {tuple(r['dims'])} | {r['dtype']} | {r['plan']['problem']['layout']} | "
                     f"{r['bytes'] / 2**20:.1f} | " + " | ".join(cells) + f" | {fastest} |")
    return "\n".join(lines) + "\n"


def render(path):
    with open(path) as f:
        rows = json.load(f)
    with open(os.path.splitext(path)[0] + ".md", "w") as f:
        f.write(markdown(rows))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--only", default="")
    parser.add_argument("--grid", choices=sorted(ENVELOPE_GRIDS), default=None,
                        help="the problems of this envelope grid (bench/problems.py) instead of the sweep's")
    parser.add_argument("--out", default="strategies.json")
    parser.add_argument("--epilogues", action="store_true",
                        help="only the planner's choice and the split strategy with each epilogue")
    parser.add_argument("--render", default=None, help="only rewrite this JSON file's .md")
    args = parser.parse_args(argv)
    if args.render:
        render(args.render)
        return
    require_cuda("bench/strategies.py")
    if args.grid:
        problems, named = ENVELOPE_GRIDS[args.grid], []
    else:
        problems = dict(random_problems(args.count))
        named = [n for n in SWEEP if not n.startswith("grow_")] + ["grow_16777216", "grow_268435456"]
    wanted = set(args.only.split(",")) if args.only else None
    rows = []
    for name in list(problems) + named:
        if wanted and name not in wanted:
            continue
        if name in problems:  # a sweep problem's values are drawn from its number, a grid's from its place
            inputs = make_random_inputs(problems[name], index=len(rows) if args.grid else int(name[1:]))
        else:
            inputs = make_inputs(name)
        row = measure(name, inputs, len(rows), args.epilogues)
        rows.append(row)
        t = row["times"]
        fastest = min((v, k) for k, v in t.items() if k not in ("auto", "shortcut", "read_floor"))
        chosen = f"{row['plan']['strategy']}/{row['plan']['reader']}/{row['plan']['epilogue']}"
        bad = [k for k, e in row["errors"].items() if isinstance(e, str) or e > 1e-2]
        print(f"{name:14s} {str(row['dims']):34s} {row['dtype']:8s} {row['plan']['problem']['layout']:13s} "
              + " ".join(f"{k}={v * 1000:.1f}" for k, v in t.items())
              + f"  chose {chosen} ({row['plan']['predicted_us']:.1f} predicted)  best {fastest[1]}"
              + f"  auto/best {t.get('auto', float('nan')) / fastest[0]:.2f}  auto/shortcut "
              + f"{t.get('auto', float('nan')) / t['shortcut']:.2f}" + (f"  BAD {bad}" if bad else ""), flush=True)
        inputs = None
        torch.cuda.empty_cache()
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=1)
    render(args.out)


if __name__ == "__main__":
    main()
