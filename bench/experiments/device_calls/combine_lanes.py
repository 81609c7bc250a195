"""Padding's combine of per-tap sums without shares at each lane count a plane (s95: planning.forced_tap_combine_lanes,
explain's combine) against the rule's, on one machine: every problem of the public sweep at padding 1..3 whose tap
sums take the tap kernels without shares, timed with 1, 2, 4, 8, 16 and 32 lanes forced and by the rule, beside the
padding-0 forward; each forward checked against the float64 shortcut. 32 lanes is main's warp per plane wherever the
GEMM does not ask for the cells, so "32" against "rule" is s95's A/B within one build. One JSON line a (problem,
padding):

    python combine_lanes.py OUT.jsonl [SECONDS]     # run in a built tree's root (PYTHONPATH=python:bench)

Lines as they finish, so a run cut off at SECONDS keeps what it timed. callEL.sh runs it with AB=combine_lanes."""
import json
import sys
import time

sys.path.insert(0, "bench")

import fusedlse_cuda  # noqa: E402
from fusedlse_cuda.planning import forced_tap_combine_lanes  # noqa: E402
from element_ab import forced_ab, padded_sweep_pairs  # noqa: E402  (beside this file)

LANES = (1, 2, 4, 8, 16, 32)


def main():
    out_path = sys.argv[1]
    deadline = time.time() + (float(sys.argv[2]) if len(sys.argv) > 2 else 1e9)
    with open(out_path, "w") as out:
        for name, problem, padding, inputs in padded_sweep_pairs(deadline):
            x, weight = inputs[:2]
            plan = fusedlse_cuda.explain(x, weight, padding=padding)
            if "combine" not in plan or plan.get("gemm", {}).get("strategy") == "tap_shares":
                continue
            forcings = {str(lanes): (lambda lanes=lanes: forced_tap_combine_lanes(lanes)) for lanes in LANES}
            errs, us = forced_ab(inputs, padding, {**forcings, "rule": None})
            row = dict(name=name, shape=list(problem[0]), dtype=str(x.dtype).replace("torch.", ""), layout=problem[2],
                       padding=padding, mib=round(x.nbytes / 2**20, 1), us=us, rule=plan["combine"],
                       tap_sums=plan["tap_sums"], gemm_over=plan.get("gemm_over"),
                       err={k: float(f"{v:.3g}") for k, v in errs.items()})
            print(json.dumps(row), file=out, flush=True)
            print(name, padding, row["dtype"], row["layout"], us, plan["combine"], flush=True)


if __name__ == "__main__":
    main()
