"""The gemv epilogue's wide block (docs/limits.md section 102) in one build: the forward's do_bench median (L2 flushed)
of the named shapes and of every public-sweep problem whose plan takes the gemv epilogue here, and, with the gemv
epilogue forced, of made-up GEMMs its rows walk in several trips; each the least of ROUNDS. Run in two trees' builds
in turn (callW.sh) for their A/B.
python gemv_ab.py OUT.jsonl"""
import contextlib
import json
import os
import sys

sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
import torch  # noqa: E402

import fusedlse_cuda  # noqa: E402
from fusedlse_cuda.planning import forced_plan  # noqa: E402
from problems import NAMED_TARGETS, make_inputs, make_problem, make_random_inputs, random_problems  # noqa: E402
from timing import median_ms  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "3"))
REP = int(os.environ.get("REP", "40"))
# (B, C_in, H, W, C_out): 256 threads' trips -> 512's (plan::gemv_lse_tiling)
FORCED = {"g_mid": (32, 128, 128, 128, 256), "g_r20": (16, 197, 60, 60, 88), "g_deep": (8, 1024, 8, 8, 64),
          "g_wide": (2, 70, 2, 2, 5000), "g_rows": (128, 128, 8, 8, 1024), "g_one_trip": (16, 64, 64, 64, 128)}


def problems():
    for name in NAMED_TARGETS:
        yield name, make_inputs(name), False
    for index, (name, problem) in enumerate(random_problems().items()):
        args = make_random_inputs(problem, index)
        plan = fusedlse_cuda.explain(args[0], args[1])
        if plan["strategy"] == "split" and plan["epilogue"] == "gemv_lse":
            yield name, args, False
        del args
    for name, (b, c, h, w, n) in FORCED.items():
        yield name, make_problem(b, c, h, w, n, 3, 3, device="cuda", draw_on_device=True), True


def main(out):
    with open(out, "a") as f:
        for name, args, forced in problems():
            fn = lambda: fusedlse_cuda.forward(*args)  # noqa: E731
            plan = fusedlse_cuda.explain(args[0], args[1])
            best = float("inf")
            with forced_plan("split", None, "gemv_lse") if forced else contextlib.nullcontext():
                for _ in range(ROUNDS):
                    fn()
                    best = min(best, median_ms(fn, 10, REP) * 1e3)
            row = dict(name=name, us=round(best, 2), forced=forced, epilogue=plan.get("epilogue"),
                       gemv_threads=plan.get("gemv_threads"), gemv_trips=plan.get("gemv_trips"),
                       device=torch.cuda.get_device_name())
            f.write(json.dumps(row) + "\n")
            f.flush()
            del args
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main(sys.argv[1])
