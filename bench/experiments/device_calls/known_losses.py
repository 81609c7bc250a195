"""The problems beyond the public sweep that README named as slower than torch's shortcut (docs/limits.md section
103): seed 13's r61 ([41332, 681, 1, 4] bfloat16 -> 3996, 112 GFMA) and seed 7's r53 ([53725, 1650, 5, 1] bfloat16
channels-last -> 11), with fusedlse's plan and cublas_factors; fusedlse CUDA, torch's shortcut eager and compiled;
do_bench medians (L2 flushed), each the least of 2. Run in a built tree: PYTHONPATH=python:. python3
known_losses.py OUT.jsonl"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
import torch  # noqa: E402

from problems import PROVIDERS, make_random_inputs, random_problems  # noqa: E402
from timing import median_ms  # noqa: E402
import fusedlse_cuda  # noqa: E402


def main(out_path):
    with open(out_path, "w") as f:
        for seed, name in ((13, "r61"), (7, "r53")):
            problems = random_problems(seed=seed)
            args = make_random_inputs(problems[name], list(problems).index(name))
            plan = fusedlse_cuda.explain(args[0], args[1])
            row = dict(seed=seed, name=name, problem=str(problems[name]), plan=plan["epilogue"],
                       factors=plan.get("cublas_factors"), device=torch.cuda.get_device_name())
            for provider in ("cuda", "torch_shortcut", "torch_shortcut_compiled"):
                fn = PROVIDERS[provider]()
                call = lambda: fn(*args)  # noqa: E731
                call()
                row[provider] = round(min(median_ms(call, 10, 60) for _ in range(2)) * 1e3, 1)
            print(json.dumps(row), flush=True)
            f.write(json.dumps(row) + "\n")
            del args
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main(sys.argv[1])
