"""Forward times (do_bench medians, L2 flushed) at padding 0-3 of every public-sweep problem padding allows.
python lean.py TAG OUT.jsonl"""
import json, os, sys
sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
import torch, fusedlse_cuda
from problems import random_problems, make_random_inputs
from padding_groups import allowed
from timing import median_ms
tag, out = sys.argv[1], sys.argv[2]
PADS = [int(p) for p in os.environ.get("PADS", "1,2,3").split(",")]
REP = int(os.environ.get("REP", "60"))
with open(out, "a") as f:
    for index, (name, problem) in enumerate(random_problems().items()):
        pads = [p for p in PADS if allowed(problem[0], dict(padding=p))]
        if not pads:
            continue
        args = make_random_inputs(problem, index)
        us = {}
        for p in [0] + pads:
            fn = lambda: fusedlse_cuda.forward(*args, padding=p)
            fn()
            us[f"p{p}"] = round(median_ms(fn, 10, REP) * 1e3, 2)
        f.write(json.dumps(dict(tag=tag, name=name, us=us)) + "\n"); f.flush()
        del args
        torch.cuda.empty_cache()
