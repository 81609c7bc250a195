"""The bfloat16 headline's reader against a plain read (docs/limits.md section 103, next step 3): fusedlse's sum_hw of
the named split shapes (headline_bf16, headline_fp16, odd509, mid) with the plane-lanes reader's pieces a plane by its
rule and forced to 2-64 (planning.forced_plane_lanes_pieces: up to a block's 8 groups the block adds them, beyond a
second launch does), and its grid persistent (forced_plane_lanes_persistent), beside torch's x.sum(dim=(2, 3)) of the
same x and the forward by the rule; do_bench medians (L2 flushed), each the least of ROUNDS. The pieces' sums must
equal the rule's to float32's rounding (err). Run in a built tree: PYTHONPATH=python:. python3 reader_pieces.py OUT
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
import torch  # noqa: E402

import fusedlse_cuda  # noqa: E402
from fusedlse_cuda.planning import forced_plane_lanes_persistent, forced_plane_lanes_pieces  # noqa: E402
from problems import make_inputs  # noqa: E402
from timing import median_ms  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "3"))
SHAPES = os.environ.get("SHAPES", "headline_bf16,headline_fp16,odd509,mid").split(",")
PIECES = (2, 4, 8, 16, 32, 64)


def least_us(fn):
    fn()
    return round(min(median_ms(fn, 10, 60) for _ in range(ROUNDS)) * 1e3, 2)


def main(out_path):
    with open(out_path, "w") as f:
        for name in SHAPES:
            x, weight, conv_bias, bias = make_inputs(name)
            expected = fusedlse_cuda.sum_hw(x).double()
            row = dict(name=name, device=torch.cuda.get_device_name(),
                       torch_sum_hw=least_us(lambda: x.sum(dim=(2, 3))),
                       forward=least_us(lambda: fusedlse_cuda.forward(x, weight, conv_bias, bias)),
                       rule=least_us(lambda: fusedlse_cuda.sum_hw(x)))
            modes = [(f"pieces_{p}", forced_plane_lanes_pieces(p)) for p in PIECES]
            modes.append(("persistent", forced_plane_lanes_persistent(True)))
            for mode, forcing in modes:
                with forcing:
                    row[mode] = least_us(lambda: fusedlse_cuda.sum_hw(x))
                    err = (fusedlse_cuda.sum_hw(x).double() - expected).abs().max() / expected.abs().max()
                row[mode + "_err"] = err.item()
            print(json.dumps(row), flush=True)
            f.write(json.dumps(row) + "\n")
            del x, weight, conv_bias, bias
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main(sys.argv[1])
