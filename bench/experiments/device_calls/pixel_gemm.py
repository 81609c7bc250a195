"""A standalone test (docs/limits.md section 109): padding's forward on small planes as ONE GEMM over x's elements.

Every element x[b, c, h, w] meets the taps that keep it (reference.kept_inputs), so the padded logits are
    logits[b, n] = sum over (c, h, w) of x[b, c, h, w] * P[c, h, w, n] + biases,
    P[c, h, w, n] = sum over taps (t, u) keeping row h and column w of W[c, n, t, u] / (H_out * W_out),
a GEMM [B, C_in * H * W] x [C_in * H * W, C_out] that reads x once, in place and in its own dtype: no per-tap sums
and no cells. Where its depth is small (tiny planes, few channels) and C_out is narrow, that GEMM should run at the
read's speed. This script times, on public-sweep problems of small planes and narrow C_out:
- fusedlse's forward at padding 0 and at padding p (the tap kernels, small-plane or staged kernels, cells);
- `pixels`: a Triton kernel for the GEMM above (fp32 FMAs, tl.dot in "ieee" precision), x's loads in its memory
  order (a batch's row at stride 1 where contiguous or channels-last), P in that order, then the biases, the
  logsumexp and x 10 in the same kernel; P is built by torch on the host side beforehand (not timed);
- the read floor (torch's flat t.sum() over x's bytes, sweep.floors_ms).
`pixels` is checked against reference.truth (float64 on the CPU) on a slice of batches. A problem where some element
meets no tap (its P row zero: an infinity there would give NaN, where the model drops it) is skipped and said so.

    python pixel_gemm.py OUT.jsonl [NAME:PADDING ...]
"""
import json
import os
import sys

import torch
import triton
import triton.language as tl

sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
import fusedlse_cuda  # noqa: E402
from fusedlse_cuda import reference  # noqa: E402
from fusedlse_cuda.shape import conv_settings, output_size  # noqa: E402
from problems import make_random_inputs, random_problems  # noqa: E402
from sweep import best_of_rounds, floors_ms, time_ms  # noqa: E402

# Public-sweep problems with planes of at most 72 elements and C_out up to 113, most of them at paddings where the
# padding sweep (bench/experiments/h100_2026-12-06i/padding_sweep.md) has them at 1.5-4.3x padding 0's time; r22 at
# padding 1 (1.00x there) and three problems at padding 0 as controls.
CASES = ["r54:1", "r26:1", "r53:1", "r42:1", "r58:1", "r13:1", "r01:1", "r50:1", "r14:1", "r08:1", "r54:2",
         "r26:2", "r22:0", "r54:0", "r26:0", "r42:2", "r53:2", "r13:2", "r58:2", "r26:3", "r08:2", "r22:1"]
CONFIGS = [(64, 32, 4), (128, 32, 8), (32, 64, 4)]  # (rows a program, depth a step, warps)


@triton.jit
def pixel_gemm_lse_kernel(x_ptr,     # x: [B, D0, D1, D2] at strides (stride_b, s0, s1, s2), any float dtype
                          p_ptr,     # P: [D0 * D1 * D2, BLOCK_N] float32, x's element order, zeros past C_out
                          bias_ptr,  # [BLOCK_N] float32: conv_bias + bias, zeros past C_out
                          out_ptr,   # [B] float32: 10 x logsumexp
                          batch, depth, c_out, d1, d2, stride_b, s0, s1, s2,
                          CONTIG: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_K: tl.constexpr,
                          BLOCK_N: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    row_ok = rows < batch
    cols = tl.arange(0, BLOCK_N)
    acc = tl.zeros((BLOCK_B, BLOCK_N), dtype=tl.float32)
    row_base = x_ptr + rows.to(tl.int64)[:, None] * stride_b
    for k0 in range(0, depth, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        k_ok = ks < depth
        if CONTIG:
            offsets = ks.to(tl.int64)
        else:
            i2 = ks % d2
            i1 = (ks // d2) % d1
            i0 = ks // (d1 * d2)
            offsets = i0.to(tl.int64) * s0 + i1.to(tl.int64) * s1 + i2.to(tl.int64) * s2
        xv = tl.load(row_base + offsets[None, :], mask=row_ok[:, None] & k_ok[None, :], other=0.0).to(tl.float32)
        pv = tl.load(p_ptr + ks[:, None] * BLOCK_N + cols[None, :], mask=k_ok[:, None], other=0.0)
        acc += tl.dot(xv, pv, input_precision="ieee")
    logits = acc + tl.load(bias_ptr + cols)[None, :]
    logits = tl.where((cols < c_out)[None, :], logits, float("-inf"))
    top = tl.max(logits, axis=1)
    lse = top + tl.log(tl.sum(tl.exp(logits - top[:, None]), axis=1))
    tl.store(out_ptr + rows, 10.0 * lse, mask=row_ok)


def keep_matrix(size, taps, ranges):
    """[size, taps] float64: 1 where the tap keeps that input along this dimension."""
    keep = torch.zeros(size, taps, dtype=torch.float64)
    for tap, (first, end) in enumerate(ranges):
        keep[first:end, tap] = 1.0
    return keep


def pixel_weight(x, weight, padding):
    """(P [C_in, H, W, C_out] float64 on the CPU, whether every element meets some tap)."""
    _, _, height, width = x.shape
    kh, kw = weight.shape[2], weight.shape[3]
    settings = conv_settings(padding=padding)
    rows, cols = reference.kept_ranges(height, width, (kh, kw), settings)
    keep_h, keep_w = keep_matrix(height, kh, rows), keep_matrix(width, kw, cols)
    out_h, out_w = output_size(height, width, kh, kw, settings["stride"], settings["output_padding"],
                               settings["dilation"], settings["padding"])
    p = torch.einsum("ht,wu,cntu->chwn", keep_h, keep_w, weight.detach().double().cpu()) / (out_h * out_w)
    return p, bool(keep_h.sum(1).min() > 0 and keep_w.sum(1).min() > 0)


def pixel_forward(x, p, conv_bias, bias, config):
    """A callable running the pixel GEMM for x with pixel_weight's P [C_in, H, W, C_out], and its output [B]
    (float32)."""
    batch = x.shape[0]
    c_out = p.shape[3]
    block_n = max(16, triton.next_power_of_2(c_out))
    # x's dimensions (C, H, W) in its memory order, outermost first: P follows that order.
    dims = sorted(range(1, 4), key=lambda d: -x.stride(d))
    sizes = [x.shape[d] for d in dims]
    strides = [x.stride(d) for d in dims]
    contig = strides[2] == 1 and strides[1] == sizes[2] and strides[0] == sizes[1] * sizes[2]
    p = p.permute(*[d - 1 for d in dims], 3).reshape(-1, c_out)
    p_padded = torch.zeros(p.shape[0], block_n, dtype=torch.float32, device=x.device)
    p_padded[:, :c_out] = p.to(x.device, torch.float32)
    total_bias = torch.zeros(block_n, dtype=torch.float32, device=x.device)
    total_bias[:c_out] = bias.reshape(-1).float() + (0 if conv_bias is None else conv_bias.float())
    out = torch.empty(batch, dtype=torch.float32, device=x.device)
    rows, depth_step, warps = config
    grid = (triton.cdiv(batch, rows),)

    def run():
        pixel_gemm_lse_kernel[grid](x, p_padded, total_bias, out, batch, p.shape[0], c_out, sizes[1], sizes[2],
                                    x.stride(0), strides[0], strides[1], strides[2], CONTIG=contig, BLOCK_B=rows,
                                    BLOCK_K=depth_step, BLOCK_N=block_n, num_warps=warps)
        return out

    return run, contig


def main():
    out_path = sys.argv[1]
    cases = sys.argv[2:] or CASES
    problems = random_problems()
    names = list(problems)
    with open(out_path, "a") as log:
        for case in cases:
            name, padding = case.split(":")
            padding = int(padding)
            shape, dtype, layout = problems[name]
            x, weight, conv_bias, bias = make_random_inputs(problems[name], names.index(name))
            p, every_element_kept = pixel_weight(x, weight, padding)
            row = dict(case=case, shape=list(shape), dtype=str(dtype).replace("torch.", ""), layout=layout,
                       mib=round(x.numel() * x.element_size() / 2**20, 1))
            if not every_element_kept:
                row["skipped"] = "an element meets no tap"
                print(json.dumps(row), flush=True)
                log.write(json.dumps(row) + "\n")
                continue
            calls = {"p0": lambda: fusedlse_cuda.forward(x, weight, conv_bias, bias),
                     "fusedlse": lambda: fusedlse_cuda.forward(x, weight, conv_bias, bias, padding=padding)}
            contig = None
            for config in CONFIGS:
                run, contig = pixel_forward(x, p, conv_bias, bias, config)
                calls["pixels_%d_%d_%d" % config] = run
            for call in calls.values():
                call()
            torch.cuda.synchronize()
            times = best_of_rounds(calls, lambda _, fn: time_ms(fn), rounds=2)
            read_ms, _ = floors_ms(x, weight.shape[1])
            best_config = min((k for k in times if k.startswith("pixels")), key=times.get)
            # Checked on at most 4096 batches against the float64 model on the CPU.
            check = slice(0, min(x.shape[0], 4096))
            truth = reference.truth(x[check], weight, conv_bias, bias, padding=padding).reshape(-1)
            got = calls[best_config]()[check].double().cpu()
            ours = calls["fusedlse"]()[check].reshape(-1).double().cpu()
            scale = truth.abs().max().item() or 1.0
            row.update(contig=contig, read_us=round(read_ms * 1e3, 1), p0_us=round(times["p0"] * 1e3, 1),
                       fusedlse_us=round(times["fusedlse"] * 1e3, 1), pixels_us=round(times[best_config] * 1e3, 1),
                       pixels_config=best_config,
                       pixels_over_p0=round(times[best_config] / times["p0"], 3),
                       fusedlse_over_p0=round(times["fusedlse"] / times["p0"], 3),
                       pixels_err=(got - truth).abs().max().item() / scale,
                       fusedlse_err=(ours - truth).abs().max().item() / scale)
            print(json.dumps(row), flush=True)
            log.write(json.dumps(row) + "\n")
            del x, weight, conv_bias, bias, calls
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
