"""cuBLAS's GEMM over bfloat16 pieces for 16-bit x (docs/limits.md section 103) in one build: the forward's do_bench
median (L2 flushed) of every public-sweep problem of 16-bit x whose plan takes cuBLAS's epilogue here, and of made-up
GEMM-heavy 16-bit problems, with torch's shortcut (eager) beside each made-up one; each the least of ROUNDS. Run in two
trees' builds in turn (callP.sh) for their A/B.
python pieces_ab.py OUT.jsonl"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
import torch  # noqa: E402

import fusedlse_cuda  # noqa: E402
from fusedlse_cuda import reference  # noqa: E402
from problems import make_problem, make_random_inputs, random_problems  # noqa: E402
from timing import median_ms  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "3"))
REP = int(os.environ.get("REP", "30"))
# (B, C_in, H, W, C_out, dtype, layout)
MADE_UP = {"m_r06_bf16": (512, 2048, 4, 4, 1024, torch.bfloat16, "contiguous"),
           "m_sq_fp16": (2048, 1024, 8, 8, 1024, torch.float16, "contiguous"),
           "m_wide_bf16": (4096, 512, 4, 4, 4096, torch.bfloat16, "channels_last"),
           "m_big_bf16": (20000, 2000, 2, 2, 2800, torch.bfloat16, "contiguous"),
           # columns not a multiple of 8 (section 104): seed 13's r61 in contiguous x, and two more
           "m_r61_bf16": (41332, 681, 1, 4, 3996, torch.bfloat16, "contiguous"),
           "m_odd_fp16": (8192, 1000, 4, 4, 1001, torch.float16, "contiguous"),
           "m_odd_bf16": (3000, 777, 8, 8, 2999, torch.bfloat16, "channels_last"),
           # channels under 256 in GEMMs of 2^27 multiply-adds or more (section 104's rule): near its edge, and seed
           # 13's r10 cut to 65536 rows
           "m_c37_fp16": (2048, 37, 8, 8, 2056, torch.float16, "contiguous"),
           "m_c32_bf16": (4096, 32, 4, 4, 1288, torch.bfloat16, "contiguous"),
           "m_c64_bf16": (65536, 64, 2, 2, 256, torch.bfloat16, "channels_last"),
           "m_c204_fp16": (65536, 204, 1, 2, 1281, torch.float16, "contiguous")}


def problems():
    for index, (name, problem) in enumerate(random_problems().items()):
        if problem[1] not in (torch.float16, torch.bfloat16):
            continue
        args = make_random_inputs(problem, index)
        plan = fusedlse_cuda.explain(args[0], args[1])
        if plan["strategy"] == "split" and plan["epilogue"] == "cublas_lse":
            yield name, args, False
        del args
    for name, (b, c, h, w, n, dtype, layout) in MADE_UP.items():
        yield name, make_problem(b, c, h, w, n, 3, 3, dtype=dtype, layout=layout, device="cuda",
                                 draw_on_device=True), True


def least_us(fn):
    best = float("inf")
    for _ in range(ROUNDS):
        fn()
        best = min(best, median_ms(fn, 10, REP) * 1e3)
    return round(best, 2)


def main(out):
    with open(out, "a") as f:
        for name, args, made_up in problems():
            plan = fusedlse_cuda.explain(args[0], args[1])
            out_f = fusedlse_cuda.forward(*args)
            err = (out_f.double() - reference.shortcut(*[a.double() if a is not None else None for a in args]))
            row = dict(name=name, us=least_us(lambda: fusedlse_cuda.forward(*args)), epilogue=plan["epilogue"],
                       factors=plan.get("cublas_factors"), shape=list(args[0].shape), dtype=str(args[0].dtype),
                       err_vs_f64_shortcut=err.abs().max().item(), device=torch.cuda.get_device_name())
            if made_up:
                row["shortcut_us"] = least_us(lambda: reference.shortcut(*args))
            f.write(json.dumps(row) + "\n")
            f.flush()
            del args
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main(sys.argv[1])
