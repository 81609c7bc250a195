"""The padded forward with padding's combine forced to each lane count a plane (planning.forced_tap_combine_lanes),
beside the rule's choice and the padding-0 forward, on sweep rows (rNN:p). Run with a tree's PYTHONPATH (one that has
forced_tap_combine_lanes: s95's branch), from the tree's root:
    ROUNDS=2 python combine_lanes.py OUT.jsonl SPEC...
A line per spec: explain's combine, tap_sums and gemm_over under the rule, and do_bench medians (us, L2 flushed) of
each lane count, the rule's and padding 0's, taking turns for ROUNDS rounds (default 2), the least of each kept; `same`:
every forced count's output bitwise the rule's. 32 lanes is the warp per plane: main's combine wherever the GEMM does
not ask for the cells."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
import torch  # noqa: E402

import fusedlse_cuda  # noqa: E402
from fusedlse_cuda.planning import forced_tap_combine_lanes  # noqa: E402
from problems import make_random_inputs, random_problems  # noqa: E402
from timing import median_ms  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "2"))
LANES = (1, 2, 4, 8, 16, 32)

problems = random_problems()
names = list(problems)
with open(sys.argv[1], "a") as out:
    for spec in sys.argv[2:]:
        name, padding = spec.rsplit(":", 1)
        padding = int(padding)
        args = make_random_inputs(problems[name], names.index(name))
        plan = fusedlse_cuda.explain(*args[:2], padding=padding)
        best, same = {}, True
        rule_out = fusedlse_cuda.forward(*args, padding=padding)
        for _ in range(ROUNDS):
            for lanes in ("rule",) + LANES:
                def call(args=args):
                    return fusedlse_cuda.forward(*args, padding=padding)
                if lanes == "rule":
                    us = median_ms(call, 10, 50) * 1e3
                else:
                    with forced_tap_combine_lanes(lanes):
                        us = median_ms(call, 10, 50) * 1e3
                        same = same and torch.equal(call(), rule_out)  # the same sums in the same order
                best[lanes] = min(best.get(lanes, float("inf")), us)
            us0 = median_ms(lambda args=args: fusedlse_cuda.forward(*args), 10, 50) * 1e3
            best["p0"] = min(best.get("p0", float("inf")), us0)
        row = dict(spec=spec, combine=plan.get("combine"), tap_sums=plan.get("tap_sums"),
                   gemm_over=plan.get("gemm_over"), same=same, us={str(k): round(v, 1) for k, v in best.items()})
        print(json.dumps(row), file=out, flush=True)
        print(spec, row["combine"], row["us"], flush=True)
        args = None  # freed before the next spec's inputs are drawn
        torch.cuda.empty_cache()
