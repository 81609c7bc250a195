"""One problem of a seeded sweep (python compiled_static.py SEED NAME), in a process of its own so that
torch.compile sees one shape (no recompiles into dynamic shapes): the compiled shortcut's and fusedlse CUDA's
do_bench medians (docs/limits.md section 104). Run in a built tree with PYTHONPATH=python:."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
from problems import PROVIDERS, make_random_inputs, random_problems  # noqa: E402
from timing import median_ms  # noqa: E402

seed, name = int(sys.argv[1]), sys.argv[2]
problems = random_problems(seed=seed)
args = make_random_inputs(problems[name], list(problems).index(name))
row = dict(seed=seed, name=name)
for provider in ("torch_shortcut_compiled", "cuda"):
    fn = PROVIDERS[provider]()
    call = lambda: fn(*args)  # noqa: E731
    call()
    row[provider] = round(median_ms(call, 5, 20) * 1e3, 1)
print(json.dumps(row), flush=True)
