import pytest
import os

import torch

# Without a GPU the Triton seed runs on CPU tensors through Triton's interpreter; this must be set before any
# @triton.jit function is defined, i.e. before triton_ref is imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture
def fused_only():
    """Every CUDA forward in the test runs the fused launch: for tests of its launch plans (tickets, units, batch
    ranges), which the planner may send to the split strategy."""
    from fusedlse_cuda.planning import forced_plan

    with forced_plan("fused"):
        yield
