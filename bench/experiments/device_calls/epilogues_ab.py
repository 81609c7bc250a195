"""The split strategy's epilogues forced one at a time on named sweep rows (docs/limits.md section 93: r25's tiled
epilogue took 14.5 us of its forward where the compiled shortcut's cuBLAS GEMM and logsumexp took 9.8): the padding-0
forward (do_bench median, L2 flushed), the least of 3 rounds, each epilogue that applies.
python epilogues_ab.py OUT.jsonl rNN ..."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
import torch  # noqa: E402

import fusedlse_cuda  # noqa: E402
from fusedlse_cuda.planning import EPILOGUES, forced_plan  # noqa: E402
from problems import make_random_inputs, random_problems  # noqa: E402
from timing import median_ms  # noqa: E402

out, only = sys.argv[1], set(sys.argv[2:])
with open(out, "a") as f:
    for index, (name, problem) in enumerate(random_problems().items()):
        if name not in only:
            continue
        args = make_random_inputs(problem, index)
        plan = fusedlse_cuda.explain(args[0], args[1])
        best = {}
        for _ in range(3):
            for epilogue in EPILOGUES:
                if plan.get(epilogue.replace("_lse", "_us"), 0) is None:
                    continue  # the planner says it does not apply (rows_us, narrow_us None)
                with forced_plan("split", None, epilogue):
                    fn = lambda: fusedlse_cuda.forward(*args)  # noqa: E731
                    fn()
                    best[epilogue] = min(best.get(epilogue, float("inf")), median_ms(fn, 10, 40) * 1e3)
        row = dict(name=name, planned=plan.get("epilogue"), us={k: round(v, 2) for k, v in best.items()})
        f.write(json.dumps(row) + "\n")
        f.flush()
        print(row, flush=True)
        del args
        torch.cuda.empty_cache()
