"""The narrow epilogue summing strided tiny planes itself (plan::narrow_reads_planes, docs/limits.md section 95)
against the reader it replaces: the padding-0 forward (do_bench median, L2 flushed), the least of 3 rounds, by the rule
(reader "in_epilogue" where it applies), forced in place ("split", "in_epilogue", "narrow_lse"; where the planner
cannot, the reader it would take) and forced to the reader ("split", "plane_lanes", "narrow_lse"), on r59 of the
sweep, four other sweep rows of strided tiny planes and made-up shapes of strided planes (sliced_hw: x = big[:, :,
1:, 2:]; transposed: that view with H and W swapped), each dtype.
python narrow_ab.py OUT.jsonl"""
import contextlib
import json
import os
import sys

sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
import torch  # noqa: E402

import fusedlse_cuda  # noqa: E402
from fusedlse_cuda.planning import forced_plan  # noqa: E402
from problems import make_random_inputs, random_problems  # noqa: E402
from timing import median_ms  # noqa: E402

B, F, H, D = torch.bfloat16, torch.float32, torch.float16, torch.float64
MADE_UP = {  # name: ((B, C_in, H, W, C_out, kH, kW), dtype, layout)
    "s3x1_f32": ((20000, 512, 3, 1, 4, 4, 3), F, "sliced_hw"),
    "s3x1_bf16": ((40000, 512, 3, 1, 8, 2, 2), B, "sliced_hw"),
    "s2x3_f16": ((100000, 64, 2, 3, 7, 3, 3), H, "sliced_hw"),
    "s2x2_bf16": ((50000, 200, 2, 2, 16, 2, 2), B, "sliced_hw"),
    "s4x2_f32": ((5000, 1000, 4, 2, 2, 1, 1), F, "sliced_hw"),
    "s2x1_f64": ((300000, 16, 2, 1, 32, 1, 2), D, "sliced_hw"),
    "t3x1_f32": ((20000, 256, 3, 1, 4, 2, 2), F, "transposed"),
    "s3x1_f64_c1": ((3000000, 1, 3, 1, 3, 2, 2), D, "sliced_hw"),
}


def inputs(problem, index):
    shape, dtype, layout = problem
    args = list(make_random_inputs((shape, dtype, "sliced_hw" if layout == "transposed" else layout), index))
    if layout == "transposed":
        args[0] = args[0].transpose(2, 3)
    return args


problems = {name: p for name, p in random_problems().items() if name in ("r59", "r26", "r58", "r24", "r09")}
problems.update(MADE_UP)
with open(sys.argv[1], "a") as f:
    for index, (name, problem) in enumerate(problems.items()):
        args = inputs(problem, index)
        plan = fusedlse_cuda.explain(args[0], args[1])
        best = {}
        for _ in range(3):
            for mode, forced in (("rule", None), ("in_place", ("split", "in_epilogue", "narrow_lse")),
                                 ("reader", ("split", "plane_lanes", "narrow_lse"))):
                with forced_plan(*forced) if forced else contextlib.nullcontext():
                    fn = lambda: fusedlse_cuda.forward(*args)  # noqa: E731
                    fn()
                    best[mode] = min(best.get(mode, float("inf")), median_ms(fn, 10, 40) * 1e3)
        row = dict(name=name, shape=problem[0], dtype=str(problem[1]), layout=problem[2], reader=plan["reader"],
                   epilogue=plan["epilogue"], us={k: round(v, 2) for k, v in best.items()},
                   ratio=round(best["reader"] / best["in_place"], 4))
        f.write(json.dumps(row) + "\n")
        f.flush()
        print(row, flush=True)
        del args
        torch.cuda.empty_cache()
