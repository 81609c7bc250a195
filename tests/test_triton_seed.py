"""The seed's Triton path (triton_ref.seed): correct within its own numerics, on the GPU and, without one, on CPU
tensors through Triton's interpreter (TRITON_INTERPRET=1, set by conftest.py), which is how CI runs it."""
import math

import pytest
import torch

from fusedlse_cuda import reference
from helpers import TRITON_DEVICES, make_problem, rel_err

# The seed's numerics: a TF32 dot for float32; sums rounded to x's dtype for 16-bit inputs; for float64, Triton
# passes the Python-float scale as a float32 scalar (measured: 2e-8 on the H100).
SEED_TOLERANCE = {torch.float64: 1e-7, torch.float32: 2e-3, torch.float16: 2e-2, torch.bfloat16: 6e-2}
SHAPES = [(2, 3, 8, 8, 5, 3, 3), (3, 17, 13, 11, 70, 2, 3), (1, 2, 37, 29, 130, 3, 3), (20, 5, 4, 4, 9, 1, 1)]


@pytest.fixture(scope="module")
def seed():
    from triton_ref import seed as module

    return module


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("device", TRITON_DEVICES)
def test_seed_forward_matches_float64_model(seed, device, dtype, shape):
    if device == "cpu" and dtype == torch.bfloat16:
        pytest.skip("Triton's CPU interpreter mis-reads bfloat16 (a plain load + tl.sum is wrong); the GPU test covers it")
    x, weight, conv_bias, bias = make_problem(*shape, dtype=dtype, device=device)
    out = seed.forward(x, weight, conv_bias, bias)
    assert out.shape == (shape[0], 1) and out.dtype == dtype
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias)) <= SEED_TOLERANCE[dtype]


# The bias shapes fusedlse_cuda.forward takes, with and without conv_bias (without it, a single value had been read
# as a row of C_out: past its one element).
@pytest.mark.parametrize("with_conv_bias", [True, False], ids=["conv_bias", "no_conv_bias"])
@pytest.mark.parametrize("bias_shape", [(70, 1, 1), (1, 70, 1, 1), (), (1,), (1, 1, 1)], ids=str)
@pytest.mark.parametrize("device", TRITON_DEVICES)
def test_seed_bias_shapes(seed, device, bias_shape, with_conv_bias):
    x, weight, conv_bias, bias = make_problem(3, 17, 13, 11, 70, 2, 3, dtype=torch.float64, device=device)
    conv_bias = conv_bias if with_conv_bias else None
    bias = bias.flatten()[:1].reshape(bias_shape) if math.prod(bias_shape) == 1 else bias.reshape(bias_shape)
    out = seed.forward(x, weight, conv_bias, bias)
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias)) <= SEED_TOLERANCE[torch.float64]


@pytest.mark.parametrize("device", TRITON_DEVICES)
def test_seed_reads_strided_x_through_a_copy(seed, device):
    x, weight, conv_bias, bias = make_problem(2, 4, 9, 10, 6, 3, 3, device=device, layout="channels_last")
    assert rel_err(seed.forward(x, weight, conv_bias, bias), reference.truth(x, weight, conv_bias, bias)) \
        <= SEED_TOLERANCE[torch.float32]


@pytest.mark.parametrize("device", TRITON_DEVICES)
def test_seed_sum_hw(seed, device):
    x, *_ = make_problem(3, 4, 20, 30, 1, 1, 1, device=device)
    torch.testing.assert_close(seed.sum_hw(x).double(), x.double().sum(dim=(2, 3)), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("device", TRITON_DEVICES)
def test_seed_float16_sums_overflow_on_large_planes(seed, device):
    """Where the seed's numerics break: it stores row sums in float16, which overflow past 65504.
    A 300 x 300 plane of values near 1 sums to ~9e4, so the seed returns inf where the model does not."""
    x = torch.ones(1, 2, 300, 300, dtype=torch.float16, device=device)
    weight = torch.full((2, 3, 1, 1), 0.01, dtype=torch.float16, device=device)
    bias = torch.zeros(3, 1, 1, dtype=torch.float16, device=device)
    assert torch.isinf(seed.sum_hw(x)).all()
    assert torch.isfinite(reference.truth(x, weight, None, bias)).all()
    assert not torch.isfinite(seed.forward(x, weight, None, bias)).all()
