"""The padded forward's weight over taps by the cells' weight kernel ahead of the tap sums (s97) against ATen's copy
after them (main's: planning.forced_tap_weight_copy(True)), on one machine: every problem of the public sweep at
padding 1..3 whose GEMM runs over taps (explain's gemm_over "taps", no shares), timed both ways beside the padding-0
forward; each forward checked against the float64 shortcut. One JSON line a (problem, padding):

    python taps_weight_ab.py OUT.jsonl [SECONDS]     # run in a built tree's root (PYTHONPATH=python:bench)

Lines as they finish, so a run cut off at SECONDS keeps what it timed. callS1.sh runs it with AB=taps_weight_ab."""
import json
import sys
import time

sys.path.insert(0, "bench")

import fusedlse_cuda  # noqa: E402
from fusedlse_cuda.planning import forced_tap_weight_copy  # noqa: E402
from element_ab import forced_ab, padded_sweep_pairs  # noqa: E402  (beside this file)


def main():
    out_path = sys.argv[1]
    deadline = time.time() + (float(sys.argv[2]) if len(sys.argv) > 2 else 1e9)
    with open(out_path, "w") as out:
        for name, problem, padding, inputs in padded_sweep_pairs(deadline):
            x, weight = inputs[:2]
            plan = fusedlse_cuda.explain(x, weight, padding=padding)
            if plan.get("gemm_over") != "taps" or plan.get("gemm", {}).get("strategy") == "tap_shares":
                continue
            errs, us = forced_ab(inputs, padding, {"copy": lambda: forced_tap_weight_copy(True), "rule": None})
            row = dict(name=name, shape=list(problem[0]), dtype=str(x.dtype).replace("torch.", ""), layout=problem[2],
                       padding=padding, mib=round(x.nbytes / 2**20, 1), weight_mib=round(weight.nbytes / 2**20, 1),
                       us=us, tap_sums=plan["tap_sums"], err={k: float(f"{v:.3g}") for k, v in errs.items()})
            print(json.dumps(row), file=out, flush=True)
            print(name, padding, row["dtype"], row["layout"], us, plan["tap_sums"], flush=True)


if __name__ == "__main__":
    main()
