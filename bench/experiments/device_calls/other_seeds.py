"""Problems of seeds 7 and 13 (beyond the public sweep) whose GEMM cuBLAS's epilogue runs over bfloat16 pieces, most
with C_out not a multiple of 8 (docs/limits.md section 104), and seed 7's r53: fusedlse CUDA's plan, factors and
forward, and with SHORTCUTS=1 torch's shortcut eager and compiled beside it; do_bench medians (L2 flushed), each the
least of 2. Run in a built tree: PYTHONPATH=python:. python3 other_seeds.py OUT.jsonl"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
import torch  # noqa: E402

from problems import PROVIDERS, make_random_inputs, random_problems  # noqa: E402
from timing import median_ms  # noqa: E402
import fusedlse_cuda  # noqa: E402

ROWS = ((7, "r45"), (7, "r49"), (7, "r53"), (13, "r10"), (13, "r13"), (13, "r46"), (13, "r61"))


def main(out_path):
    providers = ["cuda"] + (["torch_shortcut", "torch_shortcut_compiled"] if os.environ.get("SHORTCUTS") else [])
    with open(out_path, "a") as f:
        for seed, name in ROWS:
            problems = random_problems(seed=seed)
            args = make_random_inputs(problems[name], list(problems).index(name))
            plan = fusedlse_cuda.explain(args[0], args[1])
            row = dict(seed=seed, name=name, problem=str(problems[name]), plan=plan["epilogue"],
                       factors=plan.get("cublas_factors"), device=torch.cuda.get_device_name())
            for provider in providers:
                fn = PROVIDERS[provider]()
                call = lambda: fn(*args)  # noqa: E731
                call()
                row[provider] = round(min(median_ms(call, 10, 40) for _ in range(2)) * 1e3, 1)
            print(json.dumps(row), flush=True)
            f.write(json.dumps(row) + "\n")
            del args
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main(sys.argv[1])
