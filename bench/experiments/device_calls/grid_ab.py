"""The plane-lanes reader's grid, A/B in one build (docs/limits.md section 93): every public-sweep problem's padding-0
forward (do_bench median, L2 flushed) with a block a turn (the rule) and with a persistent grid
(planning.forced_plane_lanes_persistent), the two alternating ROUNDS times, each keeping its least; the plan's readers
from explain, so rows that never launch the plane-lanes reader show the noise.
python grid_ab.py OUT.jsonl [rNN ...]"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
import torch  # noqa: E402

import fusedlse_cuda  # noqa: E402
from fusedlse_cuda.planning import forced_plane_lanes_persistent  # noqa: E402
from problems import make_random_inputs, random_problems  # noqa: E402
from timing import median_ms  # noqa: E402

out, only = sys.argv[1], set(sys.argv[2:])
ROUNDS = int(os.environ.get("ROUNDS", "3"))
REP = int(os.environ.get("REP", "40"))
with open(out, "a") as f:
    for index, (name, problem) in enumerate(random_problems().items()):
        if only and name not in only:
            continue
        args = make_random_inputs(problem, index)
        plan = fusedlse_cuda.explain(args[0], args[1])
        best = {"turns": float("inf"), "persistent": float("inf")}
        for _ in range(ROUNDS):
            for mode in best:
                with forced_plane_lanes_persistent(mode == "persistent"):
                    fn = lambda: fusedlse_cuda.forward(*args)  # noqa: E731
                    fn()
                    best[mode] = min(best[mode], median_ms(fn, 10, REP) * 1e3)
        row = dict(name=name, reader=plan.get("reader"), split_reader=plan.get("split_reader"),
                   turns_us=round(best["turns"], 2), persistent_us=round(best["persistent"], 2),
                   ratio=round(best["turns"] / best["persistent"], 4))
        f.write(json.dumps(row) + "\n")
        f.flush()
        print(row, flush=True)
        del args
        torch.cuda.empty_cache()
