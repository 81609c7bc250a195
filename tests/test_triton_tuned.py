"""The tuned Triton forward (triton_ref.tuned) over the CUDA path's correctness matrix, against the float64 model:
on the GPU, and on CPU tensors through Triton's interpreter (TRITON_INTERPRET=1, set by conftest.py) in CI."""
import pytest
import torch

from fusedlse_cuda import reference
from helpers import (DTYPES, HAS_CUDA, INTERPRETED, LAYOUTS, SETTINGS, SHAPES, TOLERANCE, TRITON_DEVICES,
                     make_problem, poison_allocator, rel_err)



@pytest.fixture(scope="module")
def tuned():
    from triton_ref import tuned as module

    return module


def skip_interpreter_bfloat16(device, dtype):
    if device == "cpu" and dtype == torch.bfloat16:
        pytest.skip("Triton's CPU interpreter mis-reads bfloat16 (a plain load + tl.sum is wrong); the GPU test covers it")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", list(SHAPES), ids=list(SHAPES))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("device", TRITON_DEVICES)
def test_tuned_forward_matches_float64_model(tuned, device, dtype, shape, layout):
    skip_interpreter_bfloat16(device, dtype)
    x, weight, conv_bias, bias = make_problem(*SHAPES[shape], dtype=dtype, device=device, layout=layout)
    poison_allocator(device)
    out = tuned.forward(x, weight, conv_bias, bias)
    assert out.shape == (x.shape[0], 1) and out.dtype == dtype and out.device == x.device
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias)) <= TOLERANCE[dtype]


@pytest.mark.parametrize("kernel", [(5, 5), (4, 5), (7, 7)], ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16], ids=str)
@pytest.mark.parametrize("device", TRITON_DEVICES)
def test_tuned_kernels_of_many_taps(tuned, device, dtype, kernel):
    """More taps than the GEMM program sums at once (MAX_TAP_BLOCK): float32 at 5x5 once needed more shared memory
    than an H200 has."""
    x, weight, conv_bias, bias = make_problem(40, 20, 4, 6, 70, *kernel, dtype=dtype, device=device)
    out = tuned.forward(x, weight, conv_bias, bias)
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias)) <= TOLERANCE[dtype]


# The rival refuses padding (test_tuned_checks_its_arguments_like_the_op).
UNPADDED = [name for name, settings in SETTINGS.items() if "padding" not in settings]


@pytest.mark.parametrize("settings", UNPADDED, ids=UNPADDED)
@pytest.mark.parametrize("device", TRITON_DEVICES)
def test_tuned_conv_settings(tuned, device, settings):
    x, weight, _, bias = make_problem(3, 5, 9, 7, 6, 2, 3, device=device)
    out = tuned.forward(x, weight, None, bias, **SETTINGS[settings])
    assert rel_err(out, reference.truth(x, weight, None, bias, **SETTINGS[settings])) <= TOLERANCE[torch.float32]


@pytest.mark.parametrize("device", TRITON_DEVICES)
def test_tuned_checks_its_arguments_like_the_op(tuned, device):
    x, weight, conv_bias, bias = make_problem(2, 3, 5, 5, 4, 3, 3, device=device)
    with pytest.raises(RuntimeError, match=r"weight has dtype Double but x has dtype Float"):
        tuned.forward(x, weight.double(), conv_bias, bias)
    with pytest.raises(ValueError, match=r"the Triton rival computes padding 0 and groups 1 only, got padding "
                                         r"\[1, 1\] and groups 1"):
        tuned.forward(x, weight, conv_bias, bias, padding=1)
    assert tuned.forward(x[:0], weight, conv_bias, bias).shape == (0, 1)


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA or INTERPRETED, reason="needs a CUDA GPU, compiled Triton")
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("shape", [(2, 300, 40, 50, 64, 3, 3), (1, 4, 1024, 1024, 128, 3, 3),
                                   (64, 96, 9, 9, 200, 3, 3)], ids=str)
def test_tuned_bitwise_reproducible(tuned, shape, layout):
    """Split sums and both ticket levels (C_in and C_out tiles) are combined in a fixed order."""
    x, weight, conv_bias, bias = make_problem(*shape, device="cuda", layout=layout)
    first = tuned.forward(x, weight, conv_bias, bias)
    for _ in range(5):
        assert torch.equal(tuned.forward(x, weight, conv_bias, bias), first)
    assert rel_err(first, reference.truth(x, weight, conv_bias, bias)) <= TOLERANCE[torch.float32]
