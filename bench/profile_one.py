"""One provider's forward on one sweep shape inside an NVTX range named "measure", after warm-up (and, for the
tuned Triton rival, after its autotuning), so that Nsight Compute profiles only that call:

    ncu --nvtx --nvtx-include "measure/" --section SpeedOfLight --section Occupancy --section LaunchStats \\
        python bench/profile_one.py cuda skinny
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from problems import PROVIDERS, SWEEP, make_inputs, require_cuda  # noqa: E402


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
    require_cuda("bench/profile_one.py")
    if len(sys.argv) != 3 or sys.argv[1] not in PROVIDERS or sys.argv[2] not in SWEEP:
        sys.exit(f"usage: python bench/profile_one.py PROVIDER SHAPE\n  PROVIDER: {' '.join(PROVIDERS)}\n"
                 f"  SHAPE: {' '.join(SWEEP)}")
    main(*sys.argv[1:])
