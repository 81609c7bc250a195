"""Every strategy and reader of the CUDA forward, forced one at a time (fusedlse_cuda.planning.forced_plan): each
must match the float64 model on every shape, dtype and layout, whatever the planner would choose there."""
import pytest
import torch

import fusedlse_cuda
from fusedlse_cuda import reference
from fusedlse_cuda.planning import forced_plan
from helpers import DTYPES, HAS_CUDA, LAYOUTS, SHAPES, TOLERANCE, make_problem, poison_allocator, rel_err

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")]

# (strategy, reader): every path forward() can take. "planes" on a layout it does not walk copies x first.
PLANS = {"fused": ("fused", None), "split_planes": ("split", "planes"), "split_tiny": ("split", "tiny_planes"),
         "split_torch": ("split", "torch_sum")}


@pytest.mark.parametrize("plan", list(PLANS))
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", list(SHAPES), ids=list(SHAPES))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_plan_matches_float64_model(dtype, shape, layout, plan):
    x, weight, conv_bias, bias = make_problem(*SHAPES[shape], dtype=dtype, device="cuda", layout=layout)
    poison_allocator("cuda")
    with forced_plan(*PLANS[plan]):
        out = fusedlse_cuda.forward(x, weight, conv_bias, bias)
    assert out.shape == (x.shape[0], 1) and out.dtype == dtype
    assert torch.isfinite(out).all()
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias)) <= TOLERANCE[dtype]


@pytest.mark.parametrize("plan", ["split_tiny", "split_torch", "split_planes"])
@pytest.mark.parametrize("bias_shape", [(7, 1, 1), (1, 7, 1, 1), (), (1, 1, 1)], ids=str)
def test_split_without_conv_bias_and_every_bias_shape(bias_shape, plan):
    x, weight, _, bias = make_problem(3, 4, 2, 3, 7, 3, 3, device="cuda")
    bias = torch.randn(bias_shape, device="cuda")
    with forced_plan(*PLANS[plan]):
        out = fusedlse_cuda.forward(x, weight, None, bias)
    assert rel_err(out, reference.truth(x, weight, None, bias)) <= TOLERANCE[torch.float32]


@pytest.mark.parametrize("plan", ["split_tiny", "split_planes"])
def test_split_is_bitwise_reproducible_and_graph_capturable(plan):
    x, weight, conv_bias, bias = make_problem(300, 20, 3, 4, 500, 3, 3, device="cuda")
    with forced_plan(*PLANS[plan]):
        first = fusedlse_cuda.forward(x, weight, conv_bias, bias)
        for _ in range(3):
            assert torch.equal(fusedlse_cuda.forward(x, weight, conv_bias, bias), first)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            fusedlse_cuda.forward(x, weight, conv_bias, bias)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            captured = fusedlse_cuda.forward(x, weight, conv_bias, bias)
    x.mul_(-1.5).add_(0.25)
    graph.replay()
    torch.cuda.synchronize()
    assert rel_err(captured, reference.truth(x, weight, conv_bias, bias)) <= TOLERANCE[torch.float32]


def test_split_keeps_float32_accuracy_with_tf32_allowed():
    """A GEMM-heavy problem: TF32 alone would be ~1e-3 off; the split strategy splits the factors (3xTF32)."""
    x, weight, conv_bias, bias = make_problem(256, 512, 1, 1, 700, 1, 1, device="cuda")
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        with forced_plan("split", "tiny_planes"):
            out = fusedlse_cuda.forward(x, weight, conv_bias, bias)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias)) <= TOLERANCE[torch.float32]


@pytest.mark.parametrize("autocast_dtype", [torch.bfloat16, torch.float16], ids=str)
def test_split_ignores_autocast(autocast_dtype):
    x, weight, conv_bias, bias = make_problem(256, 512, 1, 1, 700, 1, 1, device="cuda")
    with forced_plan("split", "torch_sum"), torch.autocast("cuda", dtype=autocast_dtype):
        out = fusedlse_cuda.forward(x, weight, conv_bias, bias)
    assert out.dtype == torch.float32
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias)) <= TOLERANCE[torch.float32]


def test_split_batch_ranges_stay_within_the_workspace():
    """Logits of 20000 x 1000 float32 (80 MB) exceed the 64 MiB workspace floor: two batch ranges."""
    x, weight, conv_bias, bias = make_problem(20000, 1, 1, 1, 1000, 1, 1, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    with forced_plan("split", "tiny_planes"):
        out = fusedlse_cuda.forward(x, weight, conv_bias, bias)
    torch.cuda.synchronize()
    assert torch.cuda.max_memory_allocated() - torch.cuda.memory_allocated() <= (64 << 20) + (1 << 20)
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias)) <= TOLERANCE[torch.float32]


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "sliced", "offset"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_sum_hw_of_tiny_planes_in_every_layout(dtype, layout):
    x = make_problem(700, 9, 2, 3, 1, 1, 1, dtype=dtype, device="cuda", layout=layout)[0]
    assert fusedlse_cuda.explain(x, torch.empty(9, 1, 1, 1, device="cuda"))["split_reader"] == "tiny_planes"
    assert rel_err(fusedlse_cuda.sum_hw(x), x.double().sum((2, 3))) <= TOLERANCE[dtype]


def test_planner_choice_is_what_runs():
    """forced_plan hands the choice back when the block ends."""
    x, weight, _, _ = make_problem(10**5, 4, 1, 1, 64, 3, 3, device="cuda")
    with forced_plan("fused"):
        assert fusedlse_cuda.explain(x, weight)["strategy"] == "fused"
    plan = fusedlse_cuda.explain(x, weight)
    assert plan["strategy"] == "split" and not plan["why"].startswith("forced")
