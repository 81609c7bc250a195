"""s111's staged small-plane kernel that ends each batch itself (SmallPlaneTapArgs::lse) against the small-plane
path's sums and separate GEMM, on one machine: every problem of the public sweep at padding 1..3 where that kernel
can run (forced on with the GEMM over x's elements forced off, which comes first: explain's gemm strategy
"staged_lse"), timed so forced ("lse"), with the kernel forced off ("no_lse": the element GEMM where its rule says)
and by the rule, beside the padding-0 forward, each forward checked against the float64 shortcut. One JSON line a
(problem, padding):

    python staged_lse_ab.py OUT.jsonl [SECONDS]     # in a built tree's root (PYTHONPATH=python:bench)

callLSE.sh runs it in one built tree (its three ways in the same build) before that tree's suite (§122)."""
import contextlib
import json
import sys
import time

import fusedlse_cuda
from element_ab import forced_ab, padded_pairs  # beside this file
from fusedlse_cuda.planning import forced_element_gemm, forced_staged_lse
from problems import random_problems  # bench/


def may_apply(problem):
    """Whether the kernel might run on `problem` ((B, C_in, H, W, C_out, kH, kW), dtype, layout): its bounds on C_in
    and the plane, and its weight within 48 KiB at the fewest values a plane (one cell), so that the inputs of
    problems it cannot take are never made."""
    batch, c_in, height, width, c_out, _, _ = problem[0]
    return batch * c_in > 0 and c_in <= 256 and height * width <= 1024 and c_in * c_out * 4 <= 48 * 1024


@contextlib.contextmanager
def lse_forced():
    """s111's kernel wherever it can run, the GEMM over x's elements (which comes first) forced off."""
    with forced_staged_lse(True), forced_element_gemm(False):
        yield


def main():
    out_path = sys.argv[1]
    deadline = time.time() + (float(sys.argv[2]) if len(sys.argv) > 2 else 1e9)
    with open(out_path, "w") as out:
        problems = ((name, problem, index) for index, (name, problem) in enumerate(random_problems().items())
                    if may_apply(problem))
        for name, problem, padding, inputs in padded_pairs(problems, deadline):
            x, weight = inputs[:2]
            with lse_forced():
                forced = fusedlse_cuda.explain(x, weight, padding=padding)
            if forced.get("gemm", {}).get("strategy") != "staged_lse":
                continue
            rule_plan = fusedlse_cuda.explain(x, weight, padding=padding)
            errs, us = forced_ab(inputs, padding, {"lse": lse_forced,
                                                   "no_lse": lambda: forced_staged_lse(False), "rule": None})
            row = dict(name=name, shape=list(problem[0]), dtype=str(x.dtype).replace("torch.", ""), layout=problem[2],
                       padding=padding, mib=round(x.nbytes / 2**20, 1), us=us, tile=forced["gemm"]["tile"],
                       gemm_over=forced["gemm_over"], depth=forced["gemm_depth"],
                       rule=rule_plan.get("gemm", {}).get("strategy"),
                       err={k: float(f"{v:.3g}") for k, v in errs.items()})
            print(json.dumps(row), file=out, flush=True)
            print(name, padding, row["dtype"], row["layout"], us, row["rule"], flush=True)


if __name__ == "__main__":
    main()
