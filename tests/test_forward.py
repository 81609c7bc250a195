"""fusedlse_cuda.forward against the real model in float64, over device x dtype x shape x layout."""
import pytest
import torch

import fusedlse_cuda
from fusedlse_cuda import reference
from helpers import DEVICES, DTYPES, LAYOUTS, TOLERANCE, make_problem, poison_allocator, rel_err

# (B, C_in, H, W, C_out, kH, kW)
SHAPES = {
    "small": (2, 3, 8, 8, 5, 3, 3),
    "odd509_b1": (1, 2, 509, 509, 3, 3, 3),
    "hw1x1": (3, 5, 1, 1, 7, 3, 3),
    "cout1000_kh_ne_kw": (2, 6, 7, 5, 1000, 2, 4),
    "cout4099": (2, 3, 9, 7, 4099, 1, 2),
    "cout1": (3, 4, 6, 10, 1, 3, 3),
    "wide_cin": (2, 300, 5, 6, 40, 3, 3),  # several epilogue units per batch
    "long_rows": (2, 3, 200, 300, 16, 3, 3),  # rows split across warps
    # short rows in units of several batches (the last tile partial), two unit groups, two passes of 256 columns
    "batch_units": (37, 70, 5, 7, 300, 3, 3),
    # small x: self-contained batch tiles (contiguous), several batches per tile where B exceeds the resident blocks
    "self_contained": (601, 3, 8, 8, 5, 3, 3),
}


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


@pytest.mark.parametrize("bias_shape", [(7, 1, 1), (7,), (1, 7), (7, 1)])
@pytest.mark.parametrize("device", DEVICES)
def test_bias_in_any_shape_with_c_out_elements(device, bias_shape):
    x, weight, conv_bias, bias = make_problem(2, 3, 4, 4, 7, 3, 3, device=device)
    bias = bias.reshape(bias_shape)
    out = fusedlse_cuda.forward(x, weight, conv_bias, bias)
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias.reshape(7, 1, 1))) <= TOLERANCE[torch.float32]


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
