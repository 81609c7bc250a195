"""One public-sweep problem at full size on the CPU against the plain-torch shortcut (reference.tap_shortcut):
timing.host_best_ms of both, interleaved, 3 rounds of about 0.3 s. From a tree's root:

    PYTHONPATH=python:. python3 bench/experiments/cpu_2026-12-05/r42_full_size.py r42 0,1,2
"""
import json
import os
import sys

sys.path.insert(0, "bench")
import fusedlse_cuda  # noqa: E402
from fusedlse_cuda import reference  # noqa: E402
from problems import make_random_inputs, random_problems  # noqa: E402
from timing import host_best_ms  # noqa: E402

problems = random_problems()
name, paddings = sys.argv[1], [int(p) for p in sys.argv[2].split(",")]
args = make_random_inputs(problems[name], list(problems).index(name), device="cpu")
x = args[0]
print(name, tuple(x.shape), x.dtype, "strides", x.stride(), "threads", os.cpu_count(), flush=True)
row = {}
for p in paddings:
    best = host_best_ms({"ours": lambda: fusedlse_cuda.forward(*args, padding=p),
                         "shortcut": lambda: reference.tap_shortcut(*args, padding=p)}, rounds=3, batch_s=0.3)
    row[f"p{p}"] = {k: round(v, 1) for k, v in best.items()}
print(json.dumps(row), flush=True)
