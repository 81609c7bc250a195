"""One provider's forward on one sweep shape inside an NVTX range named "measure", after warm-up (and, for the
tuned Triton rival, after its autotuning), so that Nsight Compute profiles only that call:

    ncu --nvtx --nvtx-include "measure/" --section SpeedOfLight --section Occupancy --section LaunchStats \\
        python bench/profile_one.py cuda skinny
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from problems import PROVIDERS, make_inputs  # noqa: E402


def main(provider, shape):
    fn = PROVIDERS[provider]()
    args = make_inputs(shape)
    for _ in range(3):
        fn(*args)
    torch.cuda.synchronize()
    torch.cuda.nvtx.range_push("measure")
    fn(*args)
    torch.cuda.nvtx.range_pop()
    torch.cuda.synchronize()


if __name__ == "__main__":
    main(*sys.argv[1:])
