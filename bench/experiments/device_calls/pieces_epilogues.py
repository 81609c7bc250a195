"""The split strategy's tiled and cuBLAS epilogues forced in turn on 16-bit problems whose cuBLAS GEMM runs over
bfloat16 pieces (docs/limits.md section 105: the planner's cost model counts SGEMM for it): the padding-0 forward
(do_bench median, L2 flushed, the least of ROUNDS), the plan's tiled_us and cublas_us, the pieces' GEMM alone (torch.mm
of bfloat16 [rows, 3 x depth] x [3 x depth, C_out rounded up to 8] into float32) and torch's eager shortcut. Problems:
the public sweep's r06, r09 and r62, and made-up ones the planner (on H100 properties) sends to each epilogue.
python pieces_epilogues.py OUT.jsonl"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
import torch  # noqa: E402

import fusedlse_cuda  # noqa: E402
from fusedlse_cuda import reference  # noqa: E402
from fusedlse_cuda.planning import forced_plan  # noqa: E402
from problems import make_problem, make_random_inputs, random_problems  # noqa: E402
from timing import median_ms  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "3"))
SWEEP_ROWS = ("r06", "r09", "r62")
# (B, C_in, H, W, C_out, dtype, layout): the planner's choice on H100 properties in the comment's first word
MADE_UP = [
    (13026, 111, 4, 4, 298, "bfloat16", "contiguous"),  # tiled
    (9545, 67, 8, 8, 593, "float16", "channels_last"),
    (52402, 56, 1, 2, 367, "bfloat16", "channels_last"),
    (53013, 45, 1, 2, 2367, "bfloat16", "contiguous"),
    (41375, 150, 3, 5, 1239, "float16", "contiguous"),
    (5410, 122, 6, 7, 646, "bfloat16", "channels_last"),
    (170523, 55, 1, 3, 1854, "float16", "channels_last"),
    (652, 135, 10, 11, 3844, "float16", "channels_last"),
    (67669, 86, 1, 2, 1122, "bfloat16", "channels_last"),
    (1363, 62, 8, 8, 3519, "float16", "contiguous"),
    (12607, 73, 3, 4, 553, "bfloat16", "contiguous"),
    (32341, 39, 2, 2, 2279, "float16", "contiguous"),
    (9563, 118, 7, 7, 1053, "bfloat16", "contiguous"),
    (6890, 79, 15, 15, 470, "bfloat16", "contiguous"),
    (3900, 122, 5, 5, 4993, "float16", "channels_last"),
    (27032, 52, 3, 4, 4595, "bfloat16", "channels_last"),
    (3160, 88, 16, 17, 2294, "float16", "channels_last"),
    (31563, 89, 3, 3, 1332, "bfloat16", "contiguous"),
    (7072, 99, 3, 3, 2437, "bfloat16", "contiguous"),
    (1685, 226, 8, 9, 3576, "float16", "channels_last"),
    (9864, 229, 7, 7, 738, "bfloat16", "contiguous"),
    (272920, 52, 1, 3, 815, "float16", "contiguous"),
    (18244, 287, 4, 5, 765, "bfloat16", "contiguous"),  # cublas
    (7761, 767, 2, 2, 741, "bfloat16", "contiguous"),
    (6859, 259, 4, 4, 312, "float16", "contiguous"),
    (633, 614, 6, 7, 4318, "float16", "contiguous"),
    (4524, 125, 6, 6, 342, "bfloat16", "contiguous"),
    (621, 593, 3, 4, 4909, "float16", "channels_last"),
    (12714, 466, 1, 3, 673, "bfloat16", "contiguous"),
    (1695, 345, 3, 4, 4400, "float16", "channels_last"),
]


def problems(sweep_rows=SWEEP_ROWS):
    """(name, inputs): the public sweep's rows named in sweep_rows, then MADE_UP's (m00, m01, ...)."""
    for index, (name, problem) in enumerate(random_problems().items()):
        if name in sweep_rows:
            yield name, make_random_inputs(problem, index)
    for i, (b, c, h, w, n, dtype, layout) in enumerate(MADE_UP):
        yield f"m{i:02d}", make_problem(b, c, h, w, n, 3, 3, dtype=getattr(torch, dtype), layout=layout,
                                        device="cuda", seed=i, draw_on_device=True)


def least_us(fn, rep=30):
    best = float("inf")
    for _ in range(ROUNDS):
        fn()
        best = min(best, median_ms(fn, 10, rep) * 1e3)
    return round(best, 2)


def plan_row(name, args):
    """A row of what the planner says of the problem `args`: its shape, C_out, dtype and layout, explain()'s epilogue,
    factors, reader and predictions, and the tiled epilogue's tile (explain's tiled_tile with it forced)."""
    x, weight = args[0], args[1]
    plan = fusedlse_cuda.explain(x, weight)
    with forced_plan("split", None, "tiled_lse"):
        tiled_tile = fusedlse_cuda.explain(x, weight).get("tiled_tile")
    return dict(name=name, shape=list(x.shape), c_out=weight.shape[1], dtype=str(x.dtype),
                channels_last=x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous(),
                planned=plan["epilogue"], factors=plan.get("cublas_factors"), reader=plan.get("split_reader"),
                tiled_tile=tiled_tile, tiled_us_pred=plan.get("tiled_us"), cublas_us_pred=plan.get("cublas_us"),
                split_us_pred=plan.get("split_us"), device=torch.cuda.get_device_name())


def append_row(f, row):
    """Writes the row to the open JSON-lines file at once (a cut-off run keeps what it measured) and gives the freed
    problem's memory back."""
    f.write(json.dumps(row) + "\n")
    f.flush()
    torch.cuda.empty_cache()


def epilogue_times(args):
    """The forward with the tiled and cuBLAS epilogues forced in turn (split strategy, the planner's reader), then as
    planned: {"tiled_lse": us, "cublas_lse": us, "planned_us": us}."""
    times = {}
    for epilogue in ("tiled_lse", "cublas_lse"):
        with forced_plan("split", None, epilogue):
            times[epilogue] = least_us(lambda: fusedlse_cuda.forward(*args))
    times["planned_us"] = least_us(lambda: fusedlse_cuda.forward(*args))
    return times


def pieces_gemm_us(rows, channels, c_out):
    depth, stride = -(-channels // 8) * 8, -(-c_out // 8) * 8
    a = torch.randn(rows, 3 * depth, device="cuda").bfloat16()
    b = torch.randn(3 * depth, stride, device="cuda").bfloat16()
    try:
        return least_us(lambda: torch.mm(a, b, out_dtype=torch.float32))
    except TypeError:
        return None


def main(out):
    with open(out, "a") as f:
        for name, args in problems():
            x = args[0]
            row = plan_row(name, args)
            row.update(epilogue_times(args))
            row["shortcut_us"] = least_us(lambda: reference.shortcut(*args))
            row["pieces_gemm_us"] = pieces_gemm_us(x.shape[0], x.shape[1], args[1].shape[1])
            print(json.dumps(row), flush=True)
            del args, x
            append_row(f, row)

if __name__ == "__main__":
    main(sys.argv[1])
