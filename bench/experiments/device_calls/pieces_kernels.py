"""Where cuBLAS's epilogue over bfloat16 pieces spends a forward (docs/limits.md section 103): the kernels of the median
of calls issued back to back (device_calls/tails.py's timeline) for r06 and the made-up GEMMs of pieces_ab.py, with
the do_bench median of the forward; with R61 set, seed 13's r61 too. Run in a built tree: PYTHONPATH=python:. python3
pieces_kernels.py OUT.jsonl"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
import torch  # noqa: E402

import fusedlse_cuda  # noqa: E402
from pieces_ab import MADE_UP  # noqa: E402
from problems import make_problem, make_random_inputs, random_problems  # noqa: E402
from tails import timeline  # noqa: E402
from timing import median_ms  # noqa: E402


def main(out_path):
    problems = random_problems()
    cases = {"r06": make_random_inputs(problems["r06"], list(problems).index("r06"))}
    if os.environ.get("R61"):  # seed 13's r61, beyond the sweep: which GEMM kernel cuBLAS takes for its logits
        seed13 = random_problems(seed=13)
        cases["seed13_r61"] = make_random_inputs(seed13["r61"], list(seed13).index("r61"))
    for name in ("m_r06_bf16", "m_wide_bf16"):
        b, c, h, w, n, dtype, layout = MADE_UP[name]
        cases[name] = make_problem(b, c, h, w, n, 3, 3, dtype=dtype, layout=layout, device="cuda", draw_on_device=True)
    with open(out_path, "w") as f:
        for name, args in cases.items():
            fn = lambda: fusedlse_cuda.forward(*args)  # noqa: E731
            row = dict(name=name, us=round(median_ms(fn, 10, 40) * 1e3, 2), **timeline(fn),
                       device=torch.cuda.get_device_name())
            print(json.dumps(row)[:1500], flush=True)
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
