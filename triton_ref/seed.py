"""The seed's Triton forward, re-implemented: the baseline every benchmark compares against.

Same algorithm, block sizes and grid as the seed (docs/design.md): one program per (b, c_in) row summing H*W in
steps of 256 elements, the sums stored in x's dtype; then one program per 16 batch rows doing the GEMM with
W.sum((2,3)) in 64 x 32 tiles on a TF32 dot, scale, bias and an online logsumexp, x10.

Its numerics are the seed's, not fusedlse's: float32 inputs go through a TF32 dot (about 3e-4 relative), and the
per-row sums are stored in x's dtype, so float16 sums overflow (inf) once a row's sum passes 65504 and bfloat16
sums keep 8 bits of mantissa. The one deviation: float64 inputs use an IEEE float64 dot (the seed's float32
accumulator cannot take a float64 dot).
"""
from typing import Optional

import torch
import triton
import triton.language as tl

SUM_BLOCK = 256
GEMM_BLOCK_M, GEMM_BLOCK_N, GEMM_BLOCK_K = 16, 64, 32


@triton.jit
def _row_sum_kernel(
    x_ptr,  # [B, C, H*W] contiguous
    sums_ptr,  # [B*C], x's dtype
    plane,  # H*W
    BLOCK: tl.constexpr, ACC_DTYPE: tl.constexpr,
):
    row = tl.program_id(0)
    row_start = x_ptr + row.to(tl.int64) * plane
    lanes = tl.arange(0, BLOCK)
    total = tl.sum(tl.zeros([BLOCK], dtype=ACC_DTYPE), axis=0)  # a 0-d zero that Triton 3.6's interpreter takes
    for begin in range(0, plane, BLOCK):
        index = begin + lanes
        values = tl.load(row_start + index, mask=index < plane, other=0.0)
        total += tl.sum(values, axis=0).to(ACC_DTYPE)
    tl.store(sums_ptr + row, total)


@triton.jit
def _gemm_lse_kernel(
    sums_ptr,  # [M, K]: per-row sums, x's dtype
    wsum_ptr,  # [K, N]: weight.sum((2,3))
    bias_ptr,  # [N]: conv_bias + bias
    out_ptr,  # [M]
    M, N, K,
    stride_sm, stride_sk,
    stride_wk, stride_wn,
    scale,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    PRECISION: tl.constexpr, ACC_DTYPE: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < M
    ks = tl.arange(0, BLOCK_K)
    running_max = tl.full((BLOCK_M,), float("-inf"), dtype=ACC_DTYPE)
    running_sum = tl.zeros((BLOCK_M,), dtype=ACC_DTYPE)
    for n_begin in range(0, N, BLOCK_N):
        cols = n_begin + tl.arange(0, BLOCK_N)
        col_ok = cols < N
        dot = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
        for k_begin in range(0, K, BLOCK_K):
            k_ok = (k_begin + ks) < K
            a = tl.load(sums_ptr + rows[:, None] * stride_sm + (k_begin + ks)[None, :] * stride_sk,
                        mask=row_ok[:, None] & k_ok[None, :], other=0.0)
            w = tl.load(wsum_ptr + (k_begin + ks)[:, None] * stride_wk + cols[None, :] * stride_wn,
                        mask=k_ok[:, None] & col_ok[None, :], other=0.0)
            dot += tl.dot(a, w, input_precision=PRECISION, out_dtype=ACC_DTYPE)
        bias = tl.load(bias_ptr + cols, mask=col_ok, other=0.0).to(ACC_DTYPE)
        logits = dot * scale + bias[None, :]
        logits = tl.where(row_ok[:, None] & col_ok[None, :], logits, float("-inf"))
        new_max = tl.maximum(running_max, tl.max(logits, axis=1))
        rescale = tl.where(running_max > float("-inf"), tl.exp(running_max - new_max), 0.0)
        running_sum = running_sum * rescale + tl.sum(tl.exp(logits - new_max[:, None]), axis=1)
        running_max = new_max
    result = (running_max + tl.log(running_sum)) * 10.0
    tl.store(out_ptr + rows, result, mask=row_ok)


def sum_hw(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, C] sums in x's dtype (the seed's first kernel)."""
    x = x.contiguous()
    batch, channels, height, width = x.shape
    sums = torch.empty(batch * channels, device=x.device, dtype=x.dtype)
    if sums.numel():
        _row_sum_kernel[(batch * channels,)](
            x, sums, height * width, BLOCK=SUM_BLOCK,
            ACC_DTYPE=tl.float64 if x.dtype == torch.float64 else tl.float32)
    return sums.view(batch, channels)


def gemm_lse(sums: torch.Tensor, weight_sum: torch.Tensor, total_bias: torch.Tensor, scale: float) -> torch.Tensor:
    """[B, K] sums, [K, N] weight sums, [N] bias -> [B, 1] = 10 * logsumexp(sums @ weight_sum * scale + bias)."""
    batch, k = sums.shape
    n = weight_sum.shape[1]
    out = torch.empty(batch, device=sums.device, dtype=sums.dtype)
    if batch:
        is_double = sums.dtype == torch.float64
        _gemm_lse_kernel[(triton.cdiv(batch, GEMM_BLOCK_M),)](
            sums, weight_sum, total_bias, out,
            batch, n, k,
            sums.stride(0), sums.stride(1),
            weight_sum.stride(0), weight_sum.stride(1),
            scale,
            BLOCK_M=GEMM_BLOCK_M, BLOCK_N=GEMM_BLOCK_N, BLOCK_K=GEMM_BLOCK_K,
            PRECISION="ieee" if is_double or sums.dtype != torch.float32 else "tf32",
            ACC_DTYPE=tl.float64 if is_double else tl.float32,
        )
    return out.view(batch, 1)


def forward(x: torch.Tensor, weight: torch.Tensor, conv_bias: Optional[torch.Tensor], bias: torch.Tensor) -> torch.Tensor:
    """The seed's forward with fusedlse_cuda.forward's arguments: two launches plus the weight and bias glue."""
    kernel_h, kernel_w = weight.shape[2], weight.shape[3]
    out_area = (x.shape[2] + kernel_h - 1) * (x.shape[3] + kernel_w - 1)
    # A bias of one value for every channel is C_out of them: the GEMM reads a bias row of C_out (without conv_bias
    # to broadcast against, it had read past a one-element bias).
    total_bias = bias.reshape(-1).expand(weight.shape[1])
    total_bias = total_bias if conv_bias is None else conv_bias + total_bias
    return gemm_lse(sum_hw(x), weight.sum(dim=(2, 3)).contiguous(), total_bias.contiguous(), 1.0 / out_area)
