"""One call of every launch plan the CUDA backend can choose, each checked against the float64 truth; run under
compute-sanitizer by test_sanitizers.py (memcheck, racecheck, synccheck, initcheck). Exits non-zero on a wrong
result. Shapes are small: every access is instrumented."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fusedlse_cuda  # noqa: E402
from fusedlse_cuda import reference  # noqa: E402
from helpers import TOLERANCE, make_problem, rel_err  # noqa: E402

# (B, C_in, H, W, C_out, kH, kW), layout, dtype: what plan it exercises.
PLANS = [
    ((128, 3, 32, 32, 16, 3, 3), "contiguous", torch.float32),     # self-contained batch tiles, no tickets
    ((6, 40, 17, 16, 33, 3, 3), "contiguous", torch.bfloat16),     # whole short rows, multi-batch units, 7 slices
    ((2, 300, 40, 50, 64, 3, 3), "contiguous", torch.float32),     # split rows, one-batch units, several groups
    ((2, 3, 41, 37, 1000, 2, 4), "offset", torch.float32),         # split unaligned rows, C_out 1000
    ((2, 3, 9, 7, 4099, 1, 2), "contiguous", torch.float16),       # C_out 4099: unit groups of one channel
    ((3, 96, 20, 20, 300, 3, 3), "channels_last", torch.float32),  # channels-last, 16-byte channel vectors
    ((2, 5, 30, 31, 12, 3, 3), "channels_last", torch.bfloat16),   # channels-last, scalar loads (C % 8 != 0)
    ((2, 7, 25, 25, 9, 3, 3), "sliced", torch.float32),            # copied first
    ((3, 4, 6, 5, 7, 3, 3), "contiguous", torch.float64),          # float64 kernels
    ((2100, 1, 1, 1, 8192, 1, 1), "contiguous", torch.float32),    # zpart over budget: two batch-range launches
]


def main():
    failures = []
    for shape, layout, dtype in PLANS:
        x, weight, conv_bias, bias = make_problem(*shape, dtype=dtype, device="cuda", layout=layout)
        err = rel_err(fusedlse_cuda.forward(x, weight, conv_bias, bias), reference.truth(x, weight, conv_bias, bias))
        sums = fusedlse_cuda.sum_hw(x)
        sums_err = rel_err(sums, x.double().sum((2, 3)))
        acc = sums.dtype
        lse = fusedlse_cuda.gemm_lse(sums, weight.to(acc).sum((2, 3)), (conv_bias.to(acc) + bias.to(acc).flatten()),
                                     1.0 / ((shape[2] + shape[5] - 1) * (shape[3] + shape[6] - 1)))
        lse_err = rel_err(lse, reference.truth(x, weight, conv_bias, bias))
        grid = fusedlse_cuda.broadcast_hw(sums, 3, 5, dtype, x_format(x))
        grid_ok = torch.equal(grid, sums.to(dtype)[:, :, None, None].expand(grid.shape))
        print(shape, layout, dtype, f"forward {err:.1e} sum_hw {sums_err:.1e} gemm_lse {lse_err:.1e} "
              f"broadcast_hw {'ok' if grid_ok else 'WRONG'}", flush=True)
        if max(err, lse_err) > TOLERANCE[dtype] or sums_err > 1e-5 or not grid_ok:
            failures.append((shape, layout, dtype))
    torch.cuda.synchronize()
    if failures:
        print("wrong results:", failures)
        sys.exit(1)
    print("all plans right")


def x_format(x):
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() \
        else torch.contiguous_format


if __name__ == "__main__":
    main()
