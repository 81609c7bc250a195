"""r59's forward, the narrow epilogue summing x's planes itself (forced in place) or after the plane-lanes reader,
three calls each, for Nsight Compute (docs/limits.md section 95). python narrow_ncu.py in_place|reader"""
import os
import sys

sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
import torch  # noqa: E402

import fusedlse_cuda  # noqa: E402
from fusedlse_cuda.planning import forced_plan  # noqa: E402
from problems import make_random_inputs, random_problems  # noqa: E402

problems = random_problems()
args = make_random_inputs(problems["r59"], list(problems).index("r59"))
reader = "in_epilogue" if sys.argv[1] == "in_place" else "plane_lanes"
with forced_plan("split", reader, "narrow_lse"):
    print(fusedlse_cuda.explain(args[0], args[1])["reader"])
    for _ in range(3):
        fusedlse_cuda.forward(*args)
torch.cuda.synchronize()
