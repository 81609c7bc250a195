"""One call of every launch plan the CUDA backend can choose, each checked against the float64 truth; run under
compute-sanitizer by test_sanitizers.py (memcheck, racecheck, synccheck, initcheck). Exits non-zero on a wrong
result. Shapes are small: every access is instrumented."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fusedlse_cuda  # noqa: E402
from fusedlse_cuda import reference  # noqa: E402
from fusedlse_cuda.planning import forced_plan  # noqa: E402
from helpers import STRIDED_VIEWS, TOLERANCE, make_problem, rel_err, strided_view  # noqa: E402

# (B, C_in, H, W, C_out, kH, kW), layout, dtype, forced (strategy, reader, epilogue): what plan it exercises.
FUSED = ("fused", None, None)
LANES_TILED = ("split", "plane_lanes", "tiled_lse")
LANES_CUBLAS = ("split", "plane_lanes", "cublas_lse")
ROWS_TILED = ("split", "channel_rows", "tiled_lse")
ROWS_LSE = ("split", None, "rows_lse")
NARROW_LSE = ("split", None, "narrow_lse")
GEMV_LSE = ("split", None, "gemv_lse")
PLANS = [
    ((128, 3, 32, 32, 16, 3, 3), "contiguous", torch.float32, FUSED),     # self-contained batch tiles, no tickets
    ((6, 40, 17, 16, 33, 3, 3), "contiguous", torch.bfloat16, FUSED),     # whole short rows, multi-batch units, 7 slices
    ((2, 300, 40, 50, 64, 3, 3), "contiguous", torch.float32, FUSED),     # split rows, one-batch units, several groups
    ((2, 3, 41, 37, 1000, 2, 4), "offset", torch.float32, FUSED),         # split unaligned rows, C_out 1000
    ((2, 3, 9, 7, 4099, 1, 2), "contiguous", torch.float16, FUSED),       # C_out 4099: unit groups of one channel
    ((3, 96, 20, 20, 300, 3, 3), "channels_last", torch.float32, FUSED),  # channels-last, 16-byte channel vectors
    ((2, 5, 30, 31, 12, 3, 3), "channels_last", torch.bfloat16, FUSED),   # channels-last, scalar loads (C % 8 != 0)
    ((2, 7, 25, 25, 9, 3, 3), "sliced", torch.float32, FUSED),            # copied first
    ((3, 4, 6, 5, 7, 3, 3), "contiguous", torch.float64, FUSED),          # float64 kernels
    ((2100, 1, 1, 1, 8192, 1, 1), "contiguous", torch.float32, FUSED),    # zpart over budget: two batch-range launches
    ((3000, 5, 2, 3, 40, 3, 3), "sliced", torch.bfloat16, LANES_TILED),  # plane-lanes: 1 lane, strided rows; tile 64 wide
    ((700, 9, 1, 1, 3, 3, 3), "channels_last", torch.float64, LANES_TILED),  # float64, tile 8 wide
    ((300, 30, 2, 2, 100, 1, 1), "contiguous", torch.float64, LANES_TILED),  # float64, 64 x 64 tiles, column runs
    ((17000, 4, 1, 2, 130, 1, 1), "contiguous", torch.float32, LANES_TILED),  # 128 x 128 tiles, two column runs
    ((20, 20, 2, 2, 700, 1, 1), "contiguous", torch.float16, LANES_TILED),  # 32 x 64 tiles, many column runs
    ((70001, 3, 1, 1, 40, 1, 1), "contiguous", torch.float32, LANES_TILED),  # more row tiles than fit at once
    ((40000, 2, 1, 1, 9, 1, 1), "contiguous", torch.float64, LANES_TILED),  # the same, float64
    ((700, 9, 1, 1, 3, 3, 3), "channels_last", torch.float64, LANES_CUBLAS),  # cuBLAS, logsumexp 4 lanes/row
    ((20000, 1, 1, 1, 1000, 1, 1), "contiguous", torch.float32, LANES_CUBLAS),  # cuBLAS, two batch ranges
    ((5, 7, 30, 31, 33, 3, 3), "sliced", torch.float16, ("split", "torch_sum", None)),  # torch reads, strided rows
    ((4, 40, 33, 35, 300, 3, 3), "contiguous", torch.float32, ("split", "planes", None)),  # fusedlse reader + GEMM
    ((6, 5, 4, 4, 3000, 1, 1), "contiguous", torch.bfloat16, LANES_CUBLAS),  # cuBLAS, logsumexp: block per row
    ((1, 2, 256, 256, 5, 1, 1), "contiguous", torch.float32, LANES_TILED),  # plane-lanes: vectors, pieces, 2nd pass
    ((2, 3, 130, 70, 5, 1, 1), "sliced", torch.float16, LANES_TILED),  # plane-lanes: 32 lanes, strided rows, pieces
    ((20, 20, 64, 130, 5, 1, 1), "sliced", torch.float16, LANES_TILED),  # plane-lanes: 8 pieces added by their block
    ((3, 2, 60, 50, 5, 1, 1), "offset", torch.float16, LANES_TILED),  # plane-lanes: vectors from inside one, both ends
    ((3, 4, 20, 3, 5, 1, 1), "sliced", torch.float64, LANES_TILED),  # plane-lanes: 8 lanes over rows of 3
    ((3, 4, 9, 7, 5, 1, 1), "channels_last", torch.float32, LANES_TILED),  # plane-lanes: one row of stride C
    ((63, 7, 2, 7, 5, 1, 1), "sliced", torch.float16, LANES_TILED),  # plane-lanes: masked vectors, past the storage
    ((40, 12, 13, 1, 5, 1, 1), "sliced", torch.float64, LANES_TILED),  # plane-lanes: masked vectors, a column
    ((300, 7, 1, 2, 5, 1, 1), "offset", torch.float16, LANES_TILED),  # plane-lanes: run walk, past the storage
    ((90, 5, 1, 1, 5, 1, 1), "contiguous", torch.float32, LANES_TILED),  # plane-lanes: whole planes per vector
    ((300, 7, 1, 1, 5, 1, 1), "offset", torch.float16, LANES_TILED),  # whole planes per vector, from before x's first
    ((1, 6, 300, 200, 5, 1, 1), "channels_last", torch.bfloat16, ROWS_TILED),  # channel rows: 42 pixels a step, chunks
    ((2, 300, 2, 3, 5, 1, 1), "channels_last", torch.bfloat16, ROWS_TILED),  # channel rows: 2 channels per thread
    ((2, 136, 24, 24, 5, 1, 1), "channels_last", torch.bfloat16, ROWS_TILED),  # vector walk: 15 copies of a period
    ((1, 1439, 24, 24, 5, 1, 1), "channels_last", torch.float16, ROWS_TILED),  # vector walk: slots past the threads
    ((2, 6, 5, 7, 700, 3, 3), "channels_last", torch.float32, ROWS_TILED),  # channel rows: W.sum folded, wider grid
    ((3, 5, 6, 7, 5, 1, 1), "sliced", torch.float16, ROWS_TILED),  # channel rows forced on planes: torch's reduction
    ((2048, 64, 2, 2, 5, 1, 1), "channels_last", torch.bfloat16, ROWS_TILED),  # pixel-vector walk: 16K threads
    ((3000, 4, 1, 2, 40, 1, 1), "contiguous", torch.float32, ROWS_LSE),  # rows epilogue: 4 lanes, 5 chunks, part-masked
    ((500, 3, 2, 1, 5, 1, 1), "contiguous", torch.float64, ROWS_LSE),  # rows epilogue: float64, a lane per row
    ((301, 70, 2, 1, 3, 1, 1), "contiguous", torch.float32, NARROW_LSE),  # narrow epilogue: 4 columns, 32 lanes
    ((2001, 9, 1, 2, 20, 1, 1), "contiguous", torch.float64, NARROW_LSE),  # narrow: float64, 32 columns, 8 lanes
    ((30, 400, 1, 1, 30, 1, 1), "contiguous", torch.float32, NARROW_LSE),  # narrow: W.sum past 48 KiB (opted in)
    ((9, 2000, 1, 1, 16, 1, 1), "contiguous", torch.float32, NARROW_LSE),  # narrow: 2 channel ranges, bias_lse adds
    ((16, 64, 8, 8, 128, 3, 3), "contiguous", torch.float32, GEMV_LSE),  # gemv epilogue: 2 slices, one trip
    ((3, 40, 2, 2, 7, 1, 1), "contiguous", torch.float64, GEMV_LSE),  # gemv: float64, 16 slices, a partial trip
    ((5, 3, 2, 2, 700, 1, 1), "contiguous", torch.bfloat16, GEMV_LSE),  # gemv: 3 passes of columns, biases staged
    ((2, 70, 2, 2, 5000, 1, 1), "contiguous", torch.float32, GEMV_LSE),  # gemv: biases past 16 KiB, read per logit
    # Views of unusual strides (helpers.STRIDED_VIEWS): expanded dimensions (stride 0) and shared elements.
    ((2, 40, 17, 16, 33, 3, 3), "expanded_channels", torch.bfloat16, FUSED),  # every channel's plane at one address
    ((3, 96, 20, 20, 300, 3, 3), "expanded_channels_last_batch", torch.float32, FUSED),  # channel vectors, batch 0
    ((63, 7, 2, 7, 5, 1, 1), "overlapping_rows", torch.float16, LANES_TILED),  # plane-lanes: rows sharing elements
    ((3, 4, 9, 7, 5, 1, 1), "expanded_rows", torch.float32, LANES_TILED),  # plane-lanes: every row at one address
    ((300, 7, 1, 2, 5, 1, 1), "expanded_batch", torch.float16, LANES_TILED),  # run walk: runs 0 elements apart
    ((2, 64, 20, 20, 5, 1, 1), "expanded_pixels", torch.bfloat16, ROWS_TILED),  # channel rows: pixel stride 0
    ((2, 6, 20, 20, 5, 1, 1), "overlapping_pixels", torch.float32, ROWS_TILED),  # channel rows: pixels 3 apart
]

# padding and groups (C_out is all groups'; the weight is sliced to [C_in, C_out / groups, kH, kW]): the planner's
# plan, the tap kernels' paths (csrc/cuda/taps.cu) and the ATen one, forward and broadcast_taps (its flat walk and
# broadcast_cut_rows_kernel).
CROPPED = [
    ((3, 4, 9, 40, 5, 3, 3), "contiguous", torch.float32, dict(padding=1)),  # tap kernels: 16-byte loads
    ((2, 3, 12, 48, 5, 3, 3), "contiguous", torch.bfloat16, dict(padding=3)),  # borders of 3 in registers
    ((2, 3, 7, 37, 6, 3, 2), "contiguous", torch.float16, dict(padding=(2, 1), stride=2)),  # tap kernels: scalar loads
    ((2, 3, 8, 33, 4, 3, 3), "sliced", torch.bfloat16, dict(padding=1, dilation=2)),  # scalar loads, strided rows
    ((2, 4, 6, 5, 6, 3, 3), "channels_last", torch.float32, dict(padding=1, groups=2)),  # ATen's tap sums, groups
    ((2, 3, 12, 20, 5, 5, 5), "contiguous", torch.float32, dict(padding=(7, 2))),  # deep crop: ATen's tap sums
    ((2, 4, 9, 9, 6, 3, 3), "contiguous", torch.float64, dict(groups=2)),  # groups: the padding-0 kernels
    ((2, 3, 4, 136, 5, 3, 3), "contiguous", torch.float32, dict(padding=1)),  # grad_x: a warp per row, 3 rows a warp
    ((1, 3, 5, 256, 4, 3, 3), "contiguous", torch.float16, dict(padding=(1, 2))),  # a warp per row of 32 vectors
    ((1100, 3, 9, 13, 5, 3, 3), "sliced", torch.float16, dict(padding=1)),  # staged planes, along rows
    ((700, 5, 7, 11, 4, 4, 2), "channels_last", torch.float32, dict(padding=(1, 2))),  # staged, along channels
    ((3, 4, 9, 40, 5, 3, 3), "expanded_rows", torch.float32, dict(padding=1)),  # tap kernels: rows 0 apart
    ((2, 6, 8, 10, 6, 3, 3), "expanded_pixels", torch.float32, dict(padding=1)),  # channels walk: pixel stride 0
    ((1100, 3, 9, 13, 5, 3, 3), "overlapping_planes", torch.float16, dict(padding=1)),  # staged planes sharing rows
]


def problem(shape, layout, dtype):
    """make_problem's inputs on the GPU, x in `layout` (helpers.LAYOUTS) or seen through a view (STRIDED_VIEWS)."""
    if layout in STRIDED_VIEWS:
        x, weight, conv_bias, bias = make_problem(*shape, dtype=dtype, device="cuda")
        return strided_view(x, layout), weight, conv_bias, bias
    return make_problem(*shape, dtype=dtype, device="cuda", layout=layout)


def main():
    failures = []
    for shape, layout, dtype, plan in PLANS:
        x, weight, conv_bias, bias = problem(shape, layout, dtype)
        with forced_plan(*plan):
            out = fusedlse_cuda.forward(x, weight, conv_bias, bias)
        err = rel_err(out, reference.truth(x, weight, conv_bias, bias))
        sums = fusedlse_cuda.sum_hw(x)
        sums_err = rel_err(sums, x.double().sum((2, 3)))
        acc = sums.dtype
        lse = fusedlse_cuda.gemm_lse(sums, weight.to(acc).sum((2, 3)), (conv_bias.to(acc) + bias.to(acc).flatten()),
                                     1.0 / ((shape[2] + shape[5] - 1) * (shape[3] + shape[6] - 1)))
        lse_err = rel_err(lse, reference.truth(x, weight, conv_bias, bias))
        grid = fusedlse_cuda.broadcast_hw(sums, 3, 5, dtype, x_format(x))
        grid_ok = torch.equal(grid, sums.to(dtype)[:, :, None, None].expand(grid.shape))
        print(shape, layout, dtype, plan, f"forward {err:.1e} sum_hw {sums_err:.1e} gemm_lse {lse_err:.1e} "
              f"broadcast_hw {'ok' if grid_ok else 'WRONG'}", flush=True)
        if max(err, lse_err) > TOLERANCE[dtype] or sums_err > 1e-5 or not grid_ok:
            failures.append((shape, layout, dtype, plan))
    for shape, layout, dtype, settings in CROPPED:
        x, weight, conv_bias, bias = problem(shape, layout, dtype)
        weight = weight[:, :shape[4] // settings.get("groups", 1)].contiguous()
        err = rel_err(fusedlse_cuda.forward(x, weight, conv_bias, bias, **settings),
                      reference.truth(x, weight, conv_bias, bias, **settings))
        crop = {k: v for k, v in settings.items() if k != "groups"}
        acc = torch.float64 if dtype == torch.float64 else torch.float32
        taps = torch.randn(shape[0], shape[1], shape[5], shape[6], dtype=acc, device="cuda")
        spread = fusedlse_cuda.broadcast_taps(taps, shape[2], shape[3], dtype, memory_format=x_format(x), **crop)
        spread_err = rel_err(spread, fusedlse_cuda.broadcast_taps(taps.cpu(), shape[2], shape[3], dtype, **crop))
        print(shape, layout, dtype, settings, f"forward {err:.1e} broadcast_taps {spread_err:.1e}", flush=True)
        if err > TOLERANCE[dtype] or spread_err > TOLERANCE[dtype]:
            failures.append((shape, layout, dtype, settings))
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
