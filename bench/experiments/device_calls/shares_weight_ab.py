"""The tap combine's shares of the cropped GEMM where its weight is read where it lies (TapSumsArgs::weight_pitch 0:
kTapCombineBlocksPerSm blocks of its stage would not fit a multiprocessor, as the headline's 36.9 KiB a block on an
RTX 4090's 100 KiB), the path s107 changes (bench/experiments/s107_next.mbox, docs/limits.md §120-121): shapes whose
C_out makes that stage too large on an H100 or H200 too, the shares forced on (forced_tap_shares), timed beside the
padding-0 forward and with the shares forced off; each forward checked against the float64 shortcut. One JSON line a
(shape, dtype, padding), `stage_kib` the weight's stage a block would take (eight warps of C_out columns of
kH * kW | 1 values):

    python shares_weight_ab.py OUT.jsonl [SECONDS]     # in a built tree's root (PYTHONPATH=python:bench)

Run it in each tree (device_calls/callTR.sh's loop with this script for tap_reader_ab.py) and compare "shares"."""
import itertools
import json
import sys
import time

import torch

from element_ab import forced_ab  # beside this file
from problems import make_random_inputs  # noqa: E402 (bench/)

import fusedlse_cuda  # noqa: E402
from fusedlse_cuda.planning import forced_tap_shares  # noqa: E402

SHAPES = [  # (B, C_in, H, W, C_out, kH, kW)
    (16, 64, 512, 512, 256, 3, 3),  # the headline's x and kernel, twice its C_out
    (16, 64, 256, 256, 512, 3, 3),
    (64, 32, 64, 64, 384, 3, 3),
    (8, 128, 128, 128, 200, 4, 4),
]
DTYPES = (torch.bfloat16, torch.float16, torch.float32)


def main():
    out_path = sys.argv[1]
    deadline = time.time() + (float(sys.argv[2]) if len(sys.argv) > 2 else 1e9)
    with open(out_path, "w") as out:
        for index, (shape, dtype, padding) in enumerate(itertools.product(SHAPES, DTYPES, (1, 2))):
            if time.time() > deadline:
                break
            inputs = make_random_inputs((shape, dtype, "contiguous"), index)
            x, weight = inputs[:2]
            with forced_tap_shares(True):
                plan = fusedlse_cuda.explain(x, weight, padding=padding)
            errs, us = forced_ab(inputs, padding, {"shares": lambda: forced_tap_shares(True),
                                                   "no_shares": lambda: forced_tap_shares(False)})
            name = f"{str(dtype).replace('torch.', '')}:{'x'.join(map(str, shape))}"
            row = dict(name=name, shape=list(shape), dtype=str(dtype).replace("torch.", ""), padding=padding,
                       stage_kib=round(8 * 4 * shape[4] * (shape[5] * shape[6] | 1) / 1024, 1),
                       tap_sums=plan.get("tap_sums"), gemm=plan.get("gemm", {}).get("strategy"), us=us,
                       err={k: float(f"{v:.3g}") for k, v in errs.items()})
            print(json.dumps(row), file=out, flush=True)
            print(shape, row["dtype"], padding, row["gemm"], us, flush=True)
            del inputs, x, weight
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
