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

import fusedlse_cuda  # noqa: E402
from fusedlse_cuda.planning import forced_keep_gemm  # noqa: E402
from element_ab import forced_ab, padded_pairs, padded_sweep_pairs  # noqa: E402  (beside this file)
from plan_changes import keep_problems  # noqa: E402  (beside this file)


def main():
    out_path = sys.argv[1]
    deadline = time.time() + (float(sys.argv[2]) if len(sys.argv) > 2 else 1e9)
    with open(out_path, "w") as out:
        made_up = ((name, problem, 1000 + i) for i, (name, problem) in enumerate(keep_problems().items()))
        pairs = itertools.chain(padded_sweep_pairs(deadline, (torch.float16, torch.bfloat16)),
                                padded_pairs(made_up, deadline))
        for name, problem, padding, inputs in pairs:
            x, weight = inputs[:2]
            with forced_keep_gemm(True):
                forced = fusedlse_cuda.explain(x, weight, padding=padding)
            if forced.get("tap_sums") != "keep_gemm":
                continue
            rule = fusedlse_cuda.explain(x, weight, padding=padding).get("tap_sums")
            errs, us = forced_ab(inputs, padding, {"off": lambda: forced_keep_gemm(False),
                                                   "keep": lambda: forced_keep_gemm(True), "rule": None})
            row = dict(name=name, shape=list(problem[0]), dtype=str(x.dtype).replace("torch.", ""), layout=problem[2],
                       padding=padding, mib=round(x.nbytes / 2**20, 1), us=us, rule=rule,
                       err={k: float(f"{v:.3g}") for k, v in errs.items()})
            print(json.dumps(row), file=out, flush=True)
            print(name, padding, row["dtype"], row["layout"], us, rule, flush=True)


if __name__ == "__main__":
    main()
