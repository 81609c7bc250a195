"""s91's tap sums by one GEMM over a 0/1 keep matrix (ops_cuda.cpp keep_gemm_tap_sums, explain's tap_sums
"keep_gemm") against the plan without it, on one machine: every 16-bit problem of the public sweep at padding 1..3
that x's layout and the kernel let take it (forced on), timed forced off, forced on and by the rule, beside the
padding-0 forward; each forward checked against the float64 shortcut; then plan_changes.py's made-up KEEP problems
(k00, ...) the same way. One JSON line a (problem, padding):

    python keep_ab.py OUT.jsonl [SECONDS]     # run in a built tree's root (PYTHONPATH=python:bench)

Lines as they finish, so a run cut off at SECONDS keeps what it timed."""
import itertools
import json
import sys
import time

import torch

sys.path.insert(0, "bench")
from problems import rel_err  # noqa: E402
from sweep import best_of_rounds, time_ms  # noqa: E402

import fusedlse_cuda  # noqa: E402
from fusedlse_cuda import reference  # noqa: E402
from fusedlse_cuda.planning import forced_keep_gemm  # noqa: E402
from element_ab import padded_sweep_pairs  # noqa: E402  (beside this file)
from plan_changes import KEEP  # noqa: E402  (beside this file)
from problems import make_random_inputs  # noqa: E402


def made_up_pairs(deadline):
    """(name, problem, padding, inputs) of plan_changes.py's KEEP problems as it names and types them, at padding 1..3
    where the shape allows; none once time.time() passes `deadline`."""
    for i, (b, c, h, w, n, kh, kw, layout) in enumerate(KEEP):
        problem = ((b, c, h, w, n, kh, kw), (torch.bfloat16, torch.float16)[i % 2], layout)
        inputs = None
        for padding in (1, 2, 3):
            if time.time() > deadline:
                return
            if min(h + kh - 1, w + kw - 1) <= 2 * padding:
                continue
            if inputs is None:
                inputs = make_random_inputs(problem, 1000 + i)
            yield f"k{i:02d}", problem, padding, inputs
        del inputs
        torch.cuda.empty_cache()


def main():
    out_path = sys.argv[1]
    deadline = time.time() + (float(sys.argv[2]) if len(sys.argv) > 2 else 1e9)
    with open(out_path, "w") as out:
        pairs = itertools.chain(padded_sweep_pairs(deadline, (torch.float16, torch.bfloat16)), made_up_pairs(deadline))
        for name, problem, padding, inputs in pairs:
            x, weight, conv_bias, bias = inputs
            with forced_keep_gemm(True):
                forced = fusedlse_cuda.explain(x, weight, padding=padding)
            if forced.get("tap_sums") != "keep_gemm":
                continue
            rule = fusedlse_cuda.explain(x, weight, padding=padding).get("tap_sums")

            def run(force, settings=dict(padding=padding)):
                if force is None:
                    return fusedlse_cuda.forward(x, weight, conv_bias, bias, **settings)
                with forced_keep_gemm(force):
                    return fusedlse_cuda.forward(x, weight, conv_bias, bias, **settings)

            truth = reference.tap_shortcut(*(t.double() for t in inputs), padding=padding)
            errs = {k: rel_err(run(f), truth) for k, f in (("off", False), ("keep", True), ("rule", None))}
            del truth
            calls = {"p0": lambda: fusedlse_cuda.forward(x, weight, conv_bias, bias),
                     "off": lambda: run(False), "keep": lambda: run(True), "rule": lambda: run(None)}
            for fn in calls.values():
                fn()
            us = {k: round(v * 1e3, 2) for k, v in best_of_rounds(calls, lambda _, fn: time_ms(fn)).items()}
            row = dict(name=name, shape=list(problem[0]), dtype=str(x.dtype).replace("torch.", ""), layout=problem[2],
                       padding=padding, mib=round(x.nbytes / 2**20, 1), us=us, rule=rule,
                       err={k: float(f"{v:.3g}") for k, v in errs.items()})
            print(json.dumps(row), file=out, flush=True)
            print(name, padding, row["dtype"], row["layout"], us, rule, flush=True)


if __name__ == "__main__":
    main()
