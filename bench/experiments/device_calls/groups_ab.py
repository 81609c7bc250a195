"""The grouped forward's cost in one build (docs/limits.md section 101, regroup_nan_rows): each named shape and
every fourth public-sweep problem, at groups 1 and at each of GROUPS (default "2,4") the shape allows, the forward's
do_bench median (L2 flushed), the groups taking turns ROUNDS times, each keeping its least. Run in two trees' builds
in turn (callG2.sh) for their A/B.
python groups_ab.py OUT.jsonl"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
import torch  # noqa: E402

import fusedlse_cuda  # noqa: E402
from padding_groups import allowed, variant_inputs  # noqa: E402
from problems import NAMED_TARGETS, make_inputs, make_random_inputs, random_problems  # noqa: E402
from timing import median_ms  # noqa: E402

out = sys.argv[1]
ROUNDS = int(os.environ.get("ROUNDS", "3"))
REP = int(os.environ.get("REP", "40"))
GROUPS = [int(g) for g in os.environ.get("GROUPS", "2,4").split(",")]


def problems():
    for name in NAMED_TARGETS:
        args = make_inputs(name)
        yield name, tuple(args[0].shape) + (args[1].shape[1],) + tuple(args[1].shape[2:]), args
    for index, (name, problem) in enumerate(random_problems().items()):
        if index % 4 == 0:
            yield name, problem[0], make_random_inputs(problem, index)


with open(out, "a") as f:
    for name, shape, args in problems():
        groups = [1] + [g for g in GROUPS if allowed(shape, dict(groups=g))]
        if len(groups) == 1:
            continue
        calls = {g: variant_inputs(*args[:4], dict(groups=g)) for g in groups}
        best = {g: float("inf") for g in groups}
        for _ in range(ROUNDS):
            for g in groups:
                fn = lambda: fusedlse_cuda.forward(*calls[g], groups=g)  # noqa: E731
                fn()
                best[g] = min(best[g], median_ms(fn, 10, REP) * 1e3)
        row = dict(name=name, us={g: round(t, 2) for g, t in best.items()})
        f.write(json.dumps(row) + "\n")
        f.flush()
        print(row, flush=True)
        del args, calls
        torch.cuda.empty_cache()
