"""Where two builds plan a forward differently (docs/limits.md section 105: the cost model counting cuBLAS's GEMM over
bfloat16 pieces), and what that does to its time. Two phases, each run in each build's process:
  python plan_changes.py plans OUT.json     # explain() of every 16-bit public-sweep problem at padding 0-3 and
                                            # every other at padding 1-3 (where allowed), of pieces_epilogues.py's
                                            # made-up ones at padding 0 and 1, of FLIPS and ELEMENTS at padding 0,
                                            # and of KEEP at padding 1-3,
                                            # over empty tensors of their shapes and layouts (no values, no timing)
  python plan_changes.py time PLANS_A.json PLANS_B.json OUT.jsonl
                                            # the forward (do_bench median, L2 flushed, least of ROUNDS) of every
                                            # problem whose plan differs between the two files, and of CONTROLS
                                            # whose plan does not, on make_problem's values; with its plan here"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402

import fusedlse_cuda  # noqa: E402
from padding_groups import allowed  # noqa: E402
from pieces_epilogues import MADE_UP  # noqa: E402
from problems import make_problem, make_random_inputs, random_problems, sweep_layout  # noqa: E402
from timing import median_ms  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "2"))
CONTROLS = int(os.environ.get("CONTROLS", "6"))
# P0_ALL=1: time every padding-0 case too, changed plan or not (explain does not name the tiled epilogue's tile, which
# s81's bfloat16 tensor-core tile changes: bench/experiments/s81_next.mbox, docs/limits.md section 106).
P0_ALL = os.environ.get("P0_ALL") == "1"



# 16-bit problems of padding 0 (B, C_in, H, W, C_out; k 3 x 3) whose GEMM the pieces take and whose plan a launch
# less in the pieces' count moves to cuBLAS's epilogue (docs/limits.md section 106: 46 of a seeded scan on H100
# properties, every fourth), taken in bfloat16 and float16, contiguous and channels-last in turn.
FLIPS = [(1150, 100, 9, 9, 4081), (6828, 70, 7, 7, 1553), (31907, 57, 3, 4, 536), (1947, 120, 6, 7, 1172),
         (5264, 102, 8, 8, 684), (469, 104, 14, 14, 6552), (17244, 66, 3, 3, 1535), (1134, 89, 7, 8, 1760),
         (5323, 68, 3, 4, 3503), (989, 77, 16, 17, 1843), (13515, 74, 7, 8, 677), (21429, 72, 1, 3, 582)]

# 16-bit problems of one-element planes (B, C_in, C_out; k 3 x 3) whose GEMM the narrow epilogue takes, which s86 has
# load x's values itself (docs/limits.md section 109), in bfloat16 and float16, contiguous and channels-last in turn.
ELEMENTS = [(618884, 53, 2), (200000, 128, 8), (1000000, 16, 4), (50000, 512, 16), (300000, 40, 32),
            (20000, 1000, 5), (100000, 96, 13), (4000, 300, 7)]

# 16-bit problems (B, C_in, H, W, C_out, kH, kW, layout) around the keep GEMM's rule (s92, docs/limits.md section
# 112: the rows walk over taps, at most 16 taps, planes of 16-8192 elements, 8192 of them or more), at padding 1-3, in
# bfloat16 and float16 in turn: r17's and r18's planes under 16 and 4 taps, r33's under 9, planes of 144 to 8100
# elements, one input channel, batches sliced; then (s93, the keep matrix's columns rounded up to 8, planes 16-byte
# aligned by the rule) long planes by 16384-32768, k06 with planes of 8096, k05 with planes of 900, kernels of 15-30
# taps.
KEEP = [(551, 36, 514, 8, 137, 4, 4, "contiguous"), (551, 36, 257, 16, 137, 4, 4, "contiguous"),
        (70, 445, 54, 64, 256, 4, 4, "contiguous"), (70, 445, 54, 64, 256, 2, 2, "contiguous"),
        (7000, 40, 6, 168, 64, 3, 3, "contiguous"), (2000, 64, 32, 32, 100, 3, 3, "contiguous"),
        (400, 32, 90, 90, 64, 5, 3, "contiguous"), (20000, 16, 4, 64, 32, 2, 5, "contiguous"),
        (4096, 8, 12, 12, 300, 3, 3, "contiguous"), (300, 100, 40, 40, 50, 1, 5, "contiguous"),
        (8192, 1, 64, 64, 4096, 3, 3, "contiguous"), (100, 128, 24, 80, 16, 4, 4, "contiguous"),
        (96, 256, 100, 6, 15, 3, 3, "sliced_bc"), (200, 100, 30, 30, 64, 2, 2, "sliced_bc"),
        (16384, 1, 64, 64, 256, 3, 3, "contiguous"), (2048, 16, 64, 64, 64, 3, 3, "contiguous"),
        (400, 32, 88, 92, 64, 5, 3, "contiguous"), (800, 32, 88, 92, 64, 5, 3, "contiguous"),
        (2000, 64, 30, 30, 100, 3, 3, "contiguous"), (551, 36, 514, 8, 137, 5, 5, "contiguous"),
        (70, 445, 54, 64, 256, 6, 5, "contiguous"), (3000, 40, 6, 168, 64, 3, 5, "contiguous"),
        (8192, 2, 64, 64, 512, 3, 3, "contiguous")]


def keep_problems():
    """name (k00, ...) -> (shape, dtype, layout) of KEEP, bfloat16 and float16 in turn."""
    return {f"k{i:02d}": ((b, c, h, w, n, kh, kw), (torch.bfloat16, torch.float16)[i % 2], layout)
            for i, (b, c, h, w, n, kh, kw, layout) in enumerate(KEEP)}


def cases():
    """name -> (problem as the sweep writes it, padding)"""
    out = {}
    for name, (shape, dtype, layout) in random_problems().items():
        # float32 and float64 ones padded only: the cropped GEMM's cost (s90) changes no padding-0 plan.
        for padding in range(0 if dtype in (torch.float16, torch.bfloat16) else 1, 4):
            if allowed(shape, dict(padding=padding)):
                out[f"{name}_p{padding}"] = ((shape, dtype, layout), padding)
    for i, (b, c, h, w, n, dtype, layout) in enumerate(MADE_UP):
        shape = (b, c, h, w, n, 3, 3)
        for padding in (0, 1):
            out[f"m{i:02d}_p{padding}"] = ((shape, getattr(torch, dtype), layout), padding)
    for i, (b, c, h, w, n) in enumerate(FLIPS):
        dtype = (torch.bfloat16, torch.float16)[i % 2]
        layout = ("contiguous", "channels_last")[i // 2 % 2]
        out[f"f{i:02d}_p0"] = (((b, c, h, w, n, 3, 3), dtype, layout), 0)
    for name, problem in keep_problems().items():
        for padding in (1, 2, 3):
            if allowed(problem[0], dict(padding=padding)):
                out[f"{name}_p{padding}"] = (problem, padding)
    for i, (b, c, n) in enumerate(ELEMENTS):
        dtype = (torch.bfloat16, torch.float16)[i % 2]
        layout = ("contiguous", "channels_last")[i // 2 % 2]
        out[f"e{i:02d}_p0"] = (((b, c, 1, 1, n, 3, 3), dtype, layout), 0)
    return out


def empty_inputs(problem):
    """x and weight of the problem's shapes, dtype and layout, their values never read."""
    (b, c, h, w, n, kh, kw), dtype, layout = problem
    x = torch.empty(b, c, h, w, dtype=dtype, device="cuda")
    if layout.startswith("sliced"):
        x = sweep_layout(x, layout)
    elif layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.empty(c, n, kh, kw, dtype=dtype, device="cuda")


def summary(plan):
    """The plan's choices, without its predictions."""
    keep = ("strategy", "reader", "epilogue", "cublas_factors", "tap_sums", "gemm_over", "combine")
    out = {k: plan[k] for k in keep if k in plan}
    if "gemm" in plan:
        out["gemm"] = summary(plan["gemm"]) if isinstance(plan["gemm"], dict) else plan["gemm"]
    return out


def plans(out):
    result = {}
    for name, (problem, padding) in cases().items():
        x, weight = empty_inputs(problem)
        result[name] = summary(fusedlse_cuda.explain(x, weight, padding=padding))
        del x, weight
    json.dump(result, open(out, "w"), indent=0)


def time(plans_a, plans_b, out):
    a, b = json.load(open(plans_a)), json.load(open(plans_b))
    changed = [k for k in a if a[k] != b.get(k)]
    same = [k for k in a if a[k] == b.get(k)]
    chosen = changed + same[:: max(1, len(same) // CONTROLS)][:CONTROLS]
    if P0_ALL:
        chosen += [k for k in same if k.endswith("_p0") and k not in chosen]
    all_cases = cases()
    sweep_index = {name: i for i, name in enumerate(random_problems())}
    with open(out, "a") as f:
        for name in chosen:
            problem, padding = all_cases[name]
            base = name.rsplit("_p", 1)[0]
            if base in sweep_index:
                args = make_random_inputs(problem, sweep_index[base])
            else:  # made-up (m..), flipped (f..) and keep (k..) problems, each its own seed
                (bb, c, h, w, n, kh, kw), dtype, layout = problem
                sweep_only = layout in ("sliced_hw", "sliced_bc")  # the sweep's layouts, not lay_out's
                args = make_problem(bb, c, h, w, n, kh, kw, dtype=dtype,
                                    layout="contiguous" if sweep_only else layout, device="cuda",
                                    seed=int(base[1:]) + {"f": 100, "k": 200}.get(base[0], 0), draw_on_device=True)
                if sweep_only:
                    args = (sweep_layout(args[0], layout, seed=int(base[1:])),) + tuple(args[1:])
            fn = lambda: fusedlse_cuda.forward(*args, padding=padding)  # noqa: E731
            best = float("inf")
            for _ in range(ROUNDS):
                fn()
                best = min(best, median_ms(fn, 10, 30) * 1e3)
            row = dict(name=name, changed=name in changed, us=round(best, 2),
                       plan=summary(fusedlse_cuda.explain(args[0], args[1], padding=padding)),
                       device=torch.cuda.get_device_name())
            f.write(json.dumps(row) + "\n")
            f.flush()
            del args
            torch.cuda.empty_cache()


if __name__ == "__main__":
    if sys.argv[1] == "plans":
        plans(sys.argv[2])
    else:
        time(*sys.argv[2:5])
