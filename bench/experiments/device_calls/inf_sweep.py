"""Infinities and NaN in x against the float64 model (docs/limits.md section 101): random small problems, groups 1-3,
padding 0-2, bfloat16 / float32 / float64, one to three values of x made +inf, -inf or NaN, a bias value made
infinite in a fifth of them. A case passes where fusedlse's NaN, +inf and -inf fall where the model's do and the
finite values agree. SIGNS=one (default) draws weights of one sign and none 0, SIGNS=both leaves their signs (then
padding 0 differs from the model by design: README's Edges); PADDING=1 keeps only padded cases. Runs on the GPU
where there is one, else on the CPU backend.

    PYTHONPATH=python:.:tests python3 inf_sweep.py [CASES=400] [SEED=5]
"""
import math
import os
import random
import sys

import torch

import fusedlse_cuda
from fusedlse_cuda import reference
from helpers import TOLERANCE, make_problem, rel_err

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
cases, seed = int(sys.argv[1]) if len(sys.argv) > 1 else 400, int(sys.argv[2]) if len(sys.argv) > 2 else 5
one_sign = os.environ.get("SIGNS", "one") == "one"
padded_only = os.environ.get("PADDING") == "1"
rng = random.Random(seed)
ran = failed = 0
for case in range(cases):
    groups = rng.choice([1, 2, 3])
    c_in, c_out = groups * rng.randint(1, 3), groups * rng.randint(1, 3)
    h, w, kh, kw = rng.randint(1, 7), rng.randint(1, 7), rng.randint(1, 3), rng.randint(1, 3)
    room = min(h + kh - 1, w + kw - 1)
    padding = (1 if room > 2 else 0) if padded_only else (rng.choice([0, 0, 1, 2]) if room > 4 else 0)
    if padded_only and padding == 0:
        continue
    dtype = rng.choice([torch.float32, torch.float64, torch.bfloat16])
    x, weight, conv_bias, bias = make_problem(3, c_in, h, w, c_out, kh, kw, dtype=dtype, device=DEVICE, seed=case)
    weight = weight[:, :c_out // groups].contiguous()
    if one_sign:
        weight = weight.abs() + 0.01
    for _ in range(rng.randint(1, 3)):
        x[rng.randrange(3), rng.randrange(c_in), rng.randrange(h), rng.randrange(w)] = rng.choice(
            [math.inf, -math.inf, math.nan])
    if rng.random() < 0.2:
        bias = bias.clone()
        bias.view(-1)[rng.randrange(c_out)] = rng.choice([math.inf, -math.inf])
    out = fusedlse_cuda.forward(x, weight, conv_bias, bias, padding=padding, groups=groups).double().cpu()
    truth = reference.truth(x, weight, conv_bias, bias, padding=padding, groups=groups).double()
    ran += 1
    finite = truth.isfinite() & out.isfinite()
    same = (torch.equal(out.isnan(), truth.isnan()) and torch.equal(out.isposinf(), truth.isposinf()) and
            torch.equal(out.isneginf(), truth.isneginf()) and
            (not finite.any() or rel_err(out[finite], truth[finite]) <= max(TOLERANCE[dtype], 1e-6)))
    if not same:
        failed += 1
        if failed <= 8:
            print("FAIL", case, dtype, groups, padding, (h, w, kh, kw), out.flatten().tolist(),
                  truth.flatten().tolist())
print(f"{ran} cases on {DEVICE}, {failed} failed (SIGNS={'one' if one_sign else 'both'}, seed {seed})")
