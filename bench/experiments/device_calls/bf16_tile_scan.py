"""Out of sample for the bfloat16 tile's cost model (docs/limits.md section 107): seeded random 16-bit problems of
padding 0 whose tiled epilogue takes the tile (explain's tiled_tile 6), each with the tiled and cuBLAS epilogues
forced, the planned forward and torch's eager shortcut (do_bench medians, L2 flushed, the least of ROUNDS); each
problem's row appended to OUT.jsonl and its times printed.
python bf16_tile_scan.py OUT.jsonl [COUNT] [SEED]"""
import math
import os
import random
import sys

sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402

from fusedlse_cuda import reference  # noqa: E402
from pieces_epilogues import append_row, epilogue_times, least_us, plan_row  # noqa: E402
from problems import make_problem  # noqa: E402


def shapes(count, seed):
    """(B, C_in, H, W, C_out, dtype, layout): B and C_out log-uniform, C_in uniform, planes of 1-8 x 1-8, x of at most
    256 MiB and at most 2^30 logits."""
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        b = int(math.exp(rng.uniform(math.log(300), math.log(200000))))
        c_in, c_out = rng.randint(8, 200), int(math.exp(rng.uniform(math.log(65), math.log(6000))))
        h, w = rng.randint(1, 8), rng.randint(1, 8)
        if b * c_in * h * w * 2 > 256 << 20 or b * c_out > 1 << 30:
            continue
        dtype, layout = rng.choice(["float16", "bfloat16"]), rng.choice(["contiguous", "channels_last"])
        out.append((b, c_in, h, w, c_out, dtype, layout))
    return out


def main(out, count=40, seed=20261207):
    with open(out, "a") as f:
        for i, (b, c, h, w, n, dtype, layout) in enumerate(shapes(count, seed)):
            args = make_problem(b, c, h, w, n, 3, 3, dtype=getattr(torch, dtype), layout=layout, device="cuda",
                                seed=i, draw_on_device=True)
            row = plan_row(f"s{i:02d}", args)
            if row["tiled_tile"] != 6:
                continue
            row.update(epilogue_times(args))
            row["shortcut_us"] = least_us(lambda: reference.shortcut(*args))
            del args
            append_row(f, row)
            print(row["name"], row["shape"], row["c_out"], row["dtype"], row["tiled_lse"], row["cublas_lse"],
                  row["planned"], row["planned_us"], row["shortcut_us"], flush=True)


if __name__ == "__main__":
    main(sys.argv[1], *(int(v) for v in sys.argv[2:4]))
