import pytest
import os

import torch

# Without a GPU the Triton seed runs on CPU tensors through Triton's interpreter; this must be set before any
# @triton.jit function is defined, i.e. before triton_ref is imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Under pytest-xdist (-n N) each worker's torch would start as many CPU threads as the machine has cores, N times
# over: the float64 CPU references then crowd each other out. A worker gets its share of the cores instead (H200
# machine, 16 cores: the whole suite took 369-408 s under -n 12 with torch's default, 223-240 s under -n 15 with
# one thread a worker). OMP_NUM_THREADS, where set, stays the user's.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
if _WORKERS > 1 and "OMP_NUM_THREADS" not in os.environ:
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // _WORKERS))


@pytest.fixture
def fused_only():
    """Every CUDA forward in the test runs the fused launch: for tests of its launch plans (tickets, units, batch
    ranges), which the planner may send to the split strategy."""
    from fusedlse_cuda.planning import forced_plan

    with forced_plan("fused"):
        yield
