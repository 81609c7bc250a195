"""The forward on float32 GEMMs of few rows and a wide W.sum (bench/experiments/few_rows_gemm.cu's shapes as x of 8-32
MiB), every split epilogue forced (bench/strategies.py's measure), for the columns epilogue's lead (docs/limits.md
section 73):

    python3 bench/experiments/few_rows_forward.py OUT.json

Run on the H200 on 2026-12-04 (c2ba575's sm_90 build; us, auto / tiled / cuBLAS's / gemv, the shortcut; x's read
floor 20.4 on each): [8, 1024, 32, 32] -> 8192 (1 x 1 kernel) 50.6 / 68.7 / 50.5 / 2010.8, 159.5; [16, 2048, 16, 16]
-> 4096 63.7 / 60.1 / 63.8 / 2337.7, 160.9; [1, 2048, 64, 64] -> 8192 44.1 / 108.6 / 45.1 / 4013.1; [8, 1024, 32,
32] -> 8192 (3 x 3) 133.6 / 140.6 / 133.4 / 2118.8; [16, 512, 32, 32] -> 2048 (3 x 3) 38.4 / 36.8 / 38.5 / 249.4;
[32, 1024, 16, 16] -> 4096 35.8 / 40.5 / 35.7 / 1180.8."""
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, ".."))
sys.path.insert(0, os.path.join(here, "..", "..", "tests"))
import torch  # noqa: E402
from helpers import make_problem  # noqa: E402
from strategies import measure  # noqa: E402

# (B, C_in, H, W, C_out, kernel side)
SHAPES = [(8, 1024, 32, 32, 8192, 1), (16, 2048, 16, 16, 4096, 1), (1, 2048, 64, 64, 8192, 1),
          (8, 1024, 32, 32, 8192, 3), (16, 512, 32, 32, 2048, 3), (32, 1024, 16, 16, 4096, 1)]


def main(out):
    rows = []
    for batch, c_in, height, width, c_out, side in SHAPES:
        args = make_problem(batch, c_in, height, width, c_out, side, side, device="cuda", draw_on_device=True)
        row = measure(f"{batch}x{c_in}x{height}x{width}->{c_out}k{side}", args, len(rows), epilogues_only=True)
        rows.append(row)
        times = " ".join(f"{key}={value * 1000:.1f}" for key, value in row["times"].items())
        print(row["shape"], row["plan"]["epilogue"], times, flush=True)
        args = None
        torch.cuda.empty_cache()
    with open(out, "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
