"""Backward of every op: gradcheck in float64, and gradients against the real model's autograd."""
import pytest
import torch

import fusedlse_cuda
from fusedlse_cuda import reference
from helpers import (DEVICES, SETTINGS, STRIDED_VIEWS, TOLERANCE, make_problem, poison_allocator, rel_err,
                     strided_view)


def requiring_grad(*tensors):
    return [None if t is None else t.detach().requires_grad_() for t in tensors]


@pytest.mark.parametrize("settings", list(SETTINGS), ids=list(SETTINGS))
@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_forward_float64(device, settings):
    x, weight, conv_bias, bias = requiring_grad(*make_problem(2, 3, 5, 4, 4, 2, 3, dtype=torch.float64, device=device))
    fn = lambda *args: fusedlse_cuda.forward(*args, **SETTINGS[settings])  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, weight, conv_bias, bias))


@pytest.mark.parametrize("device", DEVICES)
def test_double_backward_float64(device):
    x, weight, conv_bias, bias = requiring_grad(*make_problem(2, 3, 4, 3, 4, 2, 2, dtype=torch.float64, device=device))
    fn = lambda *args: fusedlse_cuda.forward(*args, stride=2, dilation=(1, 2))  # noqa: E731
    assert torch.autograd.gradgradcheck(fn, (x, weight, conv_bias, bias))


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_building_blocks_float64(device):
    x, = requiring_grad(make_problem(2, 3, 5, 4, 4, 2, 3, dtype=torch.float64, device=device)[0])
    assert torch.autograd.gradcheck(fusedlse_cuda.sum_hw, (x,))
    assert torch.autograd.gradgradcheck(fusedlse_cuda.sum_hw, (x,))
    g = torch.Generator().manual_seed(0)
    sums, weight_sum, total_bias = requiring_grad(
        *(torch.randn(*s, generator=g, dtype=torch.float64).to(device) for s in ((3, 4), (4, 5), (5,))))
    fn = lambda s, w, b: fusedlse_cuda.gemm_lse(s, w, b, 0.3)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (sums, weight_sum, total_bias))
    assert torch.autograd.gradgradcheck(fn, (sums, weight_sum, total_bias))
    for memory_format in (torch.contiguous_format, torch.channels_last):
        fn = lambda r: fusedlse_cuda.broadcast_hw(r, 3, 2, torch.float64, memory_format)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (sums,))
        assert torch.autograd.gradgradcheck(fn, (sums,))
    crop = dict(stride=(2, 1), padding=(2, 1), output_padding=(1, 0), dilation=(1, 2))
    fn = lambda t: fusedlse_cuda.tap_sums(t, (3, 2), **crop)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))
    taps, = requiring_grad(torch.randn(2, 3, 3, 2, generator=g, dtype=torch.float64).to(device))
    fn = lambda t: fusedlse_cuda.broadcast_taps(t, 5, 4, torch.float64, **crop)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (taps,))
    assert torch.autograd.gradgradcheck(fn, (taps,))


def reference_grads(x, weight, conv_bias, bias, grad_out, settings):
    """Gradients of the real model (nn.functional.conv_transpose2d and friends) in float64 on the CPU."""
    f64 = requiring_grad(*(None if t is None else t.detach().to("cpu", torch.float64)
                           for t in (x, weight, conv_bias, bias)))
    out = reference.model_forward(*f64, **settings)
    inputs = [t for t in f64 if t is not None]
    return torch.autograd.grad(out, inputs, grad_out.to("cpu", torch.float64))


def check_gradients(x, weight, conv_bias, bias, settings, seed):
    """forward's gradients in x, weight, conv_bias and bias (all requiring grad) for a random grad_out against the
    model's: their shapes and dtypes, finite, and within 4 x x's dtype's tolerance (they go through a softmax; 16-bit
    ones are rounded to their dtype at the end). Returns them."""
    grad_out = torch.randn(x.shape[0], 1, generator=torch.Generator().manual_seed(seed)).to(x.device, x.dtype)
    poison_allocator(x.device)
    out = fusedlse_cuda.forward(x, weight, conv_bias, bias, **settings)
    grads = torch.autograd.grad(out, [x, weight, conv_bias, bias], grad_out)
    expected = reference_grads(x, weight, conv_bias, bias, grad_out, settings)
    for name, got, want, param in zip(["x", "weight", "conv_bias", "bias"], grads, expected,
                                      [x, weight, conv_bias, bias]):
        assert got.shape == param.shape and got.dtype == param.dtype, name
        assert torch.isfinite(got).all(), name
        assert rel_err(got, want) <= 4 * TOLERANCE[x.dtype], name
    return grads


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "sliced"])
@pytest.mark.parametrize("settings", ["default", "all", "padding_all"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_gradients_match_the_model(device, dtype, settings, layout):
    x, weight, conv_bias, bias = requiring_grad(
        *make_problem(3, 6, 7, 9, 5, 3, 2, dtype=dtype, device=device, layout=layout))
    grads = check_gradients(x, weight, conv_bias, bias, SETTINGS[settings], seed=1)
    # grad_x is written in x's own layout when that is channels_last, so optimisers keep it.
    if layout == "channels_last":
        assert grads[0].is_contiguous(memory_format=torch.channels_last)
    else:
        assert grads[0].is_contiguous()


@pytest.mark.parametrize("view", STRIDED_VIEWS)
@pytest.mark.parametrize("settings", ["default", "padding_all"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_gradients_through_views_of_any_strides(device, dtype, settings, view):
    """x expanded, or with elements shared between rows, planes or pixels (helpers.STRIDED_VIEWS): the gradient of
    each of the view's elements (autograd then adds those that share storage) and the parameters' as the model's."""
    x, weight, conv_bias, bias = make_problem(3, 6, 7, 9, 5, 3, 2, dtype=dtype, device=device)
    check_gradients(*requiring_grad(strided_view(x, view), weight, conv_bias, bias), SETTINGS[settings], seed=2)


@pytest.mark.parametrize("device", DEVICES)
def test_only_requested_gradients(device):
    """x without requires_grad (the usual training case for a first layer) skips the full-size grad_x."""
    x, weight, conv_bias, bias = make_problem(2, 3, 6, 5, 4, 3, 3, device=device)
    weight, bias = requiring_grad(weight, bias)
    out = fusedlse_cuda.forward(x, weight, conv_bias, bias)
    grad_weight, grad_bias = torch.autograd.grad(out.sum(), [weight, bias])
    want = reference_grads(x, weight, conv_bias, bias, torch.ones(2, 1), {})
    assert rel_err(grad_weight, want[1]) <= 4 * TOLERANCE[torch.float32]
    assert rel_err(grad_bias, want[3]) <= 4 * TOLERANCE[torch.float32]


@pytest.mark.parametrize("device", DEVICES)
def test_sums_output_of_the_op_is_differentiable(device):
    """torch.ops.fusedlse.forward also returns sum_HW(x); a loss on it reaches x like x.sum((2, 3)) would."""
    x, weight, conv_bias, bias = make_problem(2, 3, 6, 5, 4, 3, 3, dtype=torch.float64, device=device)
    x = x.requires_grad_()
    out, sums = torch.ops.fusedlse.forward(x, weight, conv_bias, bias)
    assert torch.allclose(sums, x.sum(dim=(2, 3)))
    (grad_x,) = torch.autograd.grad((out.sum() + (sums ** 2).sum()), [x])
    x_ref = x.detach().requires_grad_()
    loss = reference.model_forward(x_ref, weight, conv_bias, bias).sum() + (x_ref.sum(dim=(2, 3)) ** 2).sum()
    (want,) = torch.autograd.grad(loss, [x_ref])
    assert rel_err(grad_x, want) < 1e-10
