"""Padded tap sums of 16-bit x by cuBLAS over a 0/1 keep matrix, timed against torch's reads of the same x
(docs/limits.md section 111; section 80 measured r33, r01 and r54 this way on the H200 and did not go on).

A tap keeps a rectangle of each plane: rows R[t_h] x columns C[t_w] (reference.kept_ranges). So a plane's tap sums
are its values times keep = kron(rows_keep, cols_keep) [H*W, kH*kW], 0 or 1: one GEMM that reads x once, in x's dtype
on the tensor cores with float32 sums (torch.mm's out_dtype), exact but for the float32 sums' order. Modes:
- one_stage: planes [B*C, H*W] (each plane one run, the same stride apart) @ keep;
- one_stage_pad: the same with keep's taps padded by zero columns to a multiple of 8 (section 112);
- two_stage: rows [B*C*H, W] (every row the same stride apart) @ cols_keep [W, kW], then rows_keep over H (small);
- channels_last: per batch keep^T [taps, H*W] @ x_b [H*W, C], one strided batched GEMM.
Every 16-bit public-sweep problem at padding 1-3 (where allowed), each mode its layout allows (one_stage only where
keep is at most MAX_KEEP_MB). Each is checked against float64 tap sums once, then timed (do_bench medians, L2
flushed), beside torch's x.sum((2, 3)), a flat sum over as many contiguous bytes (the read floor) and fusedlse's
forward at padding 0 and at that padding (the module built in the tree).

    PYTHONPATH=python:bench:tests python3 keep_gemm.py OUT.jsonl [SECONDS=120] [r33,r18,...: these, in this order]
"""
import json
import os
import sys
import time

import torch

import fusedlse_cuda
from fusedlse_cuda import reference
from padding_groups import allowed
from problems import make_random_inputs, random_problems
from timing import median_ms

MAX_KEEP_MB = 64


def mm32(a, b):
    """a @ b with float32 sums and output: cuBLAS's 16-bit GEMM on CUDA; the CPU (this script's own check) widens."""
    return torch.mm(a, b, out_dtype=torch.float32) if a.is_cuda else a.float() @ b.float()


def bmm32(a, b):
    return torch.bmm(a, b, out_dtype=torch.float32) if a.is_cuda else a.float() @ b.float()


def keep_factors(height, width, kernel, padding, dtype, device="cuda"):
    """rows_keep [H, kH] and cols_keep [W, kW]: 1 where that tap keeps that row or column (stride and dilation 1)."""
    settings = dict(stride=(1, 1), padding=(padding, padding), output_padding=(0, 0), dilation=(1, 1))
    rows, cols = reference.kept_ranges(height, width, kernel, settings)
    factors = []
    for size, ranges in ((height, rows), (width, cols)):
        keep = torch.zeros(size, len(ranges), dtype=dtype, device=device)
        for tap, (first, end) in enumerate(ranges):
            keep[first:end, tap] = 1
        factors.append(keep)
    return factors, (rows, cols)


def truth_taps(x, ranges):
    """[B, C, kH * kW] float64 tap sums, as reference.tap_shortcut adds them."""
    rows, cols = ranges
    x64 = x.double()
    column_sums = torch.stack([x64[..., first:end].sum(dim=-1) for first, end in cols], dim=-1)
    return torch.stack([column_sums[:, :, first:end].sum(dim=2) for first, end in rows], dim=2).flatten(2)


def modes(x, rows_keep, cols_keep):
    """{mode: callable returning [B, C, taps] float32}: the GEMMs x's strides allow."""
    b, c, h, w = x.shape
    s0, s1, s2, s3 = x.stride()
    kh, kw = rows_keep.shape[1], cols_keep.shape[1]
    out = {}
    if s3 == 1 and s2 == w and s0 == c * s1:
        keep = torch.kron(rows_keep.float(), cols_keep.float()).to(x.dtype)  # [H*W, kH*kW], row-major taps
        planes = x.as_strided((b * c, h * w), (s1, 1))
        if keep.numel() * keep.element_size() <= MAX_KEEP_MB << 20:
            out["one_stage"] = lambda: mm32(planes, keep).view(b, c, kh * kw)
            # keep's rows (and the output's) padded with zero taps to a whole 16 bytes of x's dtype, as cuBLAS's
            # widest kernels want: is a row of 10 or 20 taps what slows r33 and r17 (docs/limits.md section 112)?
            taps_padded = -(-kh * kw // 8) * 8
            if taps_padded != kh * kw:
                keep_padded = torch.nn.functional.pad(keep, (0, taps_padded - kh * kw))
                out["one_stage_pad"] = lambda: mm32(planes, keep_padded)[:, :kh * kw].reshape(b, c, kh * kw)
    elif s3 == 1 and s2 == w and s1 == h * w:
        keep = torch.kron(rows_keep.float(), cols_keep.float()).to(x.dtype)
        planes = x.as_strided((b, c, h * w), (s0, s1, 1))
        if keep.numel() * keep.element_size() <= MAX_KEEP_MB << 20:
            out["batched"] = lambda: bmm32(planes, keep.expand(b, -1, -1))
    if s3 == 1 and s1 == h * s2 and s0 == c * s1:
        lines = x.as_strided((b * c * h, w), (s2, 1))
        rows_f = rows_keep.float()

        def two_stage():
            by_column = mm32(lines, cols_keep).view(b * c, h, kw)
            return torch.einsum("phw,ht->ptw", by_column, rows_f).reshape(b, c, kh * kw)

        out["two_stage"] = two_stage
    if s1 == 1 and s3 == c and s2 == w * c:
        keep_t = torch.kron(rows_keep.float(), cols_keep.float()).t().contiguous().to(x.dtype)  # [taps, H*W]
        pixels = x.as_strided((b, h * w, c), (s0, c, 1))
        out["channels_last"] = lambda: bmm32(keep_t.expand(b, -1, -1), pixels).transpose(1, 2)
    return out


def main():
    path = sys.argv[1]
    budget_s = float(sys.argv[2]) if len(sys.argv) > 2 else 120
    start = time.time()
    print(torch.cuda.get_device_name())
    with open(path, "w") as f:
        problems = random_problems()
        index_of = {name: index for index, name in enumerate(problems)}
        order = sys.argv[3].split(",") if len(sys.argv) > 3 else list(problems)
        for name in order:
            index, problem = index_of[name], problems[name]
            shape, dtype, layout = problem
            if dtype not in (torch.float16, torch.bfloat16):
                continue
            x = None
            for padding in (1, 2, 3):
                if not allowed(shape, dict(padding=padding)) or time.time() - start > budget_s:
                    continue
                if x is None:
                    x, weight, conv_bias, bias = make_random_inputs(problem, index)
                    flat = torch.empty(x.numel(), dtype=x.dtype, device="cuda").normal_()
                    row = dict(name=name, shape=list(shape), dtype=str(dtype), layout=layout,
                               x_sum_us=1e3 * median_ms(lambda: x.sum((2, 3))),
                               flat_us=1e3 * median_ms(lambda: flat.sum()),
                               p0_us=1e3 * median_ms(lambda: fusedlse_cuda.forward(x, weight, conv_bias, bias)))
                padded_us = 1e3 * median_ms(lambda: fusedlse_cuda.forward(x, weight, conv_bias, bias,
                                                                          padding=padding))
                (rows_keep, cols_keep), ranges = keep_factors(shape[2], shape[3], shape[5:7], padding, x.dtype)
                found = modes(x, rows_keep, cols_keep)
                if not found:
                    print(name, padding, layout, "no mode")
                    continue
                truth = truth_taps(x, ranges)
                for mode, fn in found.items():
                    try:
                        got = fn()
                        err = ((got.double() - truth).abs().max() / truth.abs().max().clamp_min(1e-30)).item()
                        us = 1e3 * median_ms(fn)
                    except Exception as e:  # noqa: BLE001 (a mode cuBLAS refuses: say so and go on)
                        err, us = None, None
                        print(name, padding, mode, "failed:", str(e).splitlines()[0])
                    result = dict(row, padding=padding, padded_us=padded_us, mode=mode, us=us, err=err)
                    f.write(json.dumps(result) + "\n")
                    f.flush()
                    if us is not None:
                        print(f"{name} p{padding} {layout:14s} {mode:13s} {us:9.1f} us  x.sum {row['x_sum_us']:8.1f}"
                              f"  p0 {row['p0_us']:8.1f}  padded {padded_us:8.1f}  over p0 {us / row['p0_us']:.3f}"
                              f"  err {err:.1e}")
                del truth
            del x
            torch.cuda.empty_cache()
    print(f"{time.time() - start:.0f} s")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
