"""fusedlse_cuda.forward against the real model in float64, over device x dtype x shape x layout."""
import math

import pytest
import torch

import fusedlse_cuda
from fusedlse_cuda import reference
from helpers import DEVICES, DTYPES, LAYOUTS, SHAPES, TOLERANCE, make_problem, poison_allocator, rel_err


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", list(SHAPES), ids=list(SHAPES))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_forward_matches_float64_model(device, dtype, shape, layout):
    x, weight, conv_bias, bias = make_problem(*SHAPES[shape], dtype=dtype, device=device, layout=layout)
    poison_allocator(device)
    out = fusedlse_cuda.forward(x, weight, conv_bias, bias)
    assert out.shape == (x.shape[0], 1) and out.dtype == dtype and out.device == x.device
    assert torch.isfinite(out).all()
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias)) <= TOLERANCE[dtype]


@pytest.mark.parametrize("device", DEVICES)
def test_forward_without_conv_bias(device):
    x, weight, _, bias = make_problem(*SHAPES["small"], device=device, conv_bias=False)
    out = fusedlse_cuda.forward(x, weight, None, bias)
    assert rel_err(out, reference.truth(x, weight, None, bias)) <= TOLERANCE[torch.float32]


# The bias shapes the op takes: one value per output channel as the model broadcasts it (test_reliability.py has
# the shapes it refuses, and ModelNew's answer for those).
@pytest.mark.parametrize("bias_shape", [(7, 1, 1), (1, 7, 1, 1), (), (1,), (1, 1, 1), (1, 1, 1, 1)], ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_per_channel_bias_shapes(device, bias_shape):
    x, weight, conv_bias, bias = make_problem(2, 3, 4, 4, 7, 3, 3, device=device)
    bias = bias.flatten()[:1].reshape(bias_shape) if math.prod(bias_shape) == 1 else bias.reshape(bias_shape)
    out = fusedlse_cuda.forward(x, weight, conv_bias, bias)
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias)) <= TOLERANCE[torch.float32]


@pytest.mark.parametrize("device", DEVICES)
def test_empty_batch_gives_empty_result(device):
    x, weight, conv_bias, bias = make_problem(1, 3, 4, 4, 5, 3, 3, device=device)
    out = fusedlse_cuda.forward(x[:0], weight, conv_bias, bias)
    assert out.shape == (0, 1) and out.dtype == x.dtype


@pytest.mark.parametrize("device", DEVICES)
def test_the_inputs_make_x_matter(device):
    """A kernel that used only x's global mean would fail the float32 tolerance by orders of magnitude."""
    x, weight, conv_bias, bias = make_problem(*SHAPES["small"], device=device)
    truth = reference.truth(x, weight, conv_bias, bias)
    flattened = torch.full_like(x, x.mean().item())
    assert rel_err(reference.truth(flattened, weight, conv_bias, bias), truth) > 1000 * TOLERANCE[torch.float32]
    # ...and so would one that used each row's mean of a different row (wrong indexing).
    shuffled = x.flip(1)
    assert rel_err(reference.truth(shuffled, weight, conv_bias, bias), truth) > 1000 * TOLERANCE[torch.float32]


def test_model_identity_holds():
    """The algebraic shortcut equals the real model (float64), which is why one read of x suffices."""
    x, weight, conv_bias, bias = make_problem(3, 4, 11, 9, 6, 2, 3, dtype=torch.float64)
    assert rel_err(reference.shortcut(x, weight, conv_bias, bias), reference.truth(x, weight, conv_bias, bias)) < 1e-12


def test_reference_module_matches_functional_model():
    torch.manual_seed(0)
    model = reference.Model(3, 5, 3, (5, 1, 1)).double()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    out = model(x)
    ref = reference.truth(x, model.conv_transpose.weight, model.conv_transpose.bias, model.bias)
    assert rel_err(out, ref) < 1e-12


def test_package_imports_on_its_own():
    """`import fusedlse_cuda` must work without importing torch first (the compiled module needs libtorch)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import fusedlse_cuda; print(fusedlse_cuda.forward.__doc__[:10])"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
