"""fusedlse_cuda.forward against the real model in float64, over device x dtype x shape x layout."""
import math

import pytest
import torch

import fusedlse_cuda
from fusedlse_cuda import reference
from fusedlse_cuda.shape import conv_settings
from helpers import (DEVICES, DTYPES, LAYOUTS, SHAPES, STRIDED_VIEWS, TOLERANCE, make_problem, poison_allocator,
                     rel_err, strided_view)


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


# Views of any strides (helpers.STRIDED_VIEWS) on each way padding reads x: planes of 30 elements (a thread a plane),
# many planes of 117 (staged in shared memory), a few of 720 (the tap kernels), and planes whose cells are their
# elements (2 x 2 under a 2 x 2 kernel, 1 x 1: without the sums, the GEMM reads x); at padding 0 the readers of small
# planes in self-contained tiles, of many planes, of a few larger ones and of one-element planes.
STRIDED_SHAPES = {"small_planes": (2, 4, 5, 6, 6, 3, 3), "many_planes": (600, 4, 9, 13, 6, 3, 3),
                  "few_planes": (3, 4, 20, 36, 6, 3, 3), "element_planes": (300, 4, 2, 2, 6, 2, 2),
                  "one_element_planes": (500, 4, 1, 1, 6, 3, 3)}
STRIDED_SETTINGS = {"default": {}, "padding": dict(padding=1),
                    "padding_stride_dilation": dict(padding=1, stride=(2, 3), dilation=(1, 2)),
                    "groups": dict(groups=2), "groups_padding": dict(groups=2, padding=1)}


@pytest.mark.parametrize("settings", list(STRIDED_SETTINGS))
@pytest.mark.parametrize("view", STRIDED_VIEWS)
@pytest.mark.parametrize("shape", list(STRIDED_SHAPES))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_views_of_any_strides_match_float64_model(device, dtype, shape, view, settings):
    """x expanded along some dimensions, or with rows, planes or pixels that share elements, read in place or copied:
    the output as the float64 model's on the view, the sums the op keeps for the backward (x.sum((2, 3)), or the
    per-tap sums with padding) as the CPU backend's of a contiguous float64 copy, both bitwise the same again, the
    output bitwise the same without the sums, and sum_hw's or tap_sums' own result as those sums."""
    settings = STRIDED_SETTINGS[settings]
    x, weight, conv_bias, bias = make_problem(*STRIDED_SHAPES[shape], dtype=dtype, device=device)
    x = strided_view(x, view)
    weight = weight[:, :weight.shape[1] // settings.get("groups", 1)]
    args = (weight, conv_bias, bias) + tuple(conv_settings(**settings).values())
    poison_allocator(device)
    out, sums = torch.ops.fusedlse.forward(x, *args)
    out_again, sums_again = torch.ops.fusedlse.forward(x, *args)
    assert torch.equal(out, out_again) and torch.equal(sums, sums_again)
    poison_allocator(device)
    assert torch.equal(torch.ops.fusedlse.forward(x, *args, keep_sums=False)[0], out)
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias, **settings)) <= TOLERANCE[dtype]
    in_float64 = (t.to("cpu", torch.float64) if isinstance(t, torch.Tensor) else t for t in args)
    want = torch.ops.fusedlse.forward(x.to("cpu", torch.float64).contiguous(), *in_float64)[1]
    assert rel_err(sums, want) <= TOLERANCE[dtype]
    crop = {name: value for name, value in settings.items() if name != "groups"}
    alone = fusedlse_cuda.tap_sums(x, tuple(weight.shape[2:]), **crop) if crop else fusedlse_cuda.sum_hw(x)
    assert rel_err(alone, want) <= TOLERANCE[dtype]


WEIGHT_VIEWS = {
    "expanded_in": lambda w: w[:1].expand(w.shape),  # every input channel's weights at one address
    "expanded_out": lambda w: w[:, :1].expand(w.shape),
    "expanded_taps": lambda w: w[:, :, :1, :1].expand(w.shape),  # one value a pair of channels
    "taps_transposed": lambda w: w.transpose(2, 3).contiguous().transpose(2, 3),  # the same values, kW outer
    "channels_last": lambda w: w.contiguous(memory_format=torch.channels_last),
}


@pytest.mark.parametrize("biases", ["as_drawn", "expanded"])
@pytest.mark.parametrize("settings", ["default", "padding", "groups_padding"])
@pytest.mark.parametrize("weight_view", list(WEIGHT_VIEWS))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_weight_and_bias_views_of_any_strides(device, dtype, weight_view, settings, biases):
    """A weight expanded along a dimension or laid out otherwise, and biases of one value expanded along C_out
    (stride 0): the output as the float64 model's on those views."""
    settings = STRIDED_SETTINGS[settings]
    x, weight, conv_bias, bias = make_problem(3, 4, 20, 36, 6, 3, 2, dtype=dtype, device=device)
    weight = WEIGHT_VIEWS[weight_view](weight[:, :weight.shape[1] // settings.get("groups", 1)])
    if biases == "expanded":
        conv_bias, bias = conv_bias[:1].expand(conv_bias.shape), bias[:1].expand(bias.shape)
    poison_allocator(device)
    out = fusedlse_cuda.forward(x, weight, conv_bias, bias, **settings)
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias, **settings)) <= TOLERANCE[dtype]


@pytest.mark.parametrize("weight_view", ["contiguous", "transposed"])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_one_by_one_kernels_match_float64_model(device, dtype, groups, weight_view):
    """A 1 x 1 kernel's W.sum is W itself (the CPU takes it as a view, not a sum over two dimensions of one), for a
    contiguous weight and for one whose C_in and C_out strides are swapped."""
    x, weight, conv_bias, bias = make_problem(3, 4, 5, 7, 6, 1, 1, dtype=dtype, device=device)
    weight = weight[:, :weight.shape[1] // groups]
    if weight_view == "transposed":
        weight = weight.transpose(0, 1).contiguous().transpose(0, 1)
    poison_allocator(device)
    out = fusedlse_cuda.forward(x, weight, conv_bias, bias, groups=groups)
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias, groups=groups)) <= TOLERANCE[dtype]


@pytest.mark.parametrize("weight_view", ["contiguous", "transposed"])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=str)
def test_cpu_padded_gemm_by_blocks_of_the_weight(dtype, groups, weight_view):
    """The CPU's padded GEMM over taps: a batch in one chunk of logits takes the weight's rows a block of channels at
    a time (csrc/cpu taps_gemm_bias_lse): C_in 130 under C_out 1024 a group, blocks of 56 channels, the last of a
    group partial; a batch past one chunk (513 rows at C_out 1024 or more) the whole rows (gemm_bias_lse)."""
    for batch, c_in, height, width, c_out in ((3, 130, 5, 6, 1024), (513, 2, 3, 2, 1024)):
        x, weight, conv_bias, bias = make_problem(batch, c_in, height, width, c_out * groups, 3, 3, dtype=dtype)
        weight = weight[:, :c_out]
        if weight_view == "transposed":
            weight = weight.transpose(0, 1).contiguous().transpose(0, 1)
        poison_allocator("cpu")
        out = fusedlse_cuda.forward(x, weight, conv_bias, bias, padding=1, groups=groups)
        truth = reference.truth(x, weight, conv_bias, bias, padding=1, groups=groups)
        assert rel_err(out, truth) <= TOLERANCE[dtype], (batch, c_in, c_out)


@pytest.mark.parametrize("layout", LAYOUTS + ["expanded_pixels"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cpu_gemm_over_kept_elements(dtype, layout):
    """The CPU's padded GEMM over kept cells that are single elements, a run of rows by a run of columns (3 x 6
    planes under a 5 x 2 kernel at padding 3: rows 0-2 by columns 2-3 kept), without the sums: only those elements
    widened (csrc/cpu widened_block), from x of every layout and from a view with a zero stride."""
    x, weight, conv_bias, bias = make_problem(200, 3, 3, 6, 7, 5, 2, dtype=dtype,
                                              layout="contiguous" if layout == "expanded_pixels" else layout)
    if layout == "expanded_pixels":
        x = strided_view(x, layout)
    poison_allocator("cpu")
    out = fusedlse_cuda.forward(x, weight, conv_bias, bias, padding=3)
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias, padding=3)) <= TOLERANCE[dtype], layout


@pytest.mark.parametrize("device", DEVICES)
def test_forward_without_conv_bias(device):
    x, weight, _, bias = make_problem(*SHAPES["small"], device=device, conv_bias=False)
    out = fusedlse_cuda.forward(x, weight, None, bias)
    assert rel_err(out, reference.truth(x, weight, None, bias)) <= TOLERANCE[torch.float32]


# The bias shapes the op takes: one value per output channel as the model broadcasts it (test_reliability.py has
# the shapes it refuses, and ModelNew's answer for those).
# Without conv_bias a single value is the only bias a channel gets (the CPU backend's GEMM once took its one value
# for a row of C_out and failed), and padding and groups take their own GEMMs.
@pytest.mark.parametrize("settings", [{}, dict(padding=1), dict(groups=3, padding=1)], ids=str)
@pytest.mark.parametrize("with_conv_bias", [True, False], ids=["conv_bias", "no_conv_bias"])
@pytest.mark.parametrize("bias_shape", [(6, 1, 1), (1, 6, 1, 1), (), (1,), (1, 1, 1), (1, 1, 1, 1)], ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_per_channel_bias_shapes(device, bias_shape, with_conv_bias, settings):
    x, weight, conv_bias, bias = make_problem(2, 3, 4, 4, 6, 3, 3, device=device)
    weight = weight[:, :6 // settings.get("groups", 1)]
    conv_bias = conv_bias if with_conv_bias else None
    bias = bias.flatten()[:1].reshape(bias_shape) if math.prod(bias_shape) == 1 else bias.reshape(bias_shape)
    out = fusedlse_cuda.forward(x, weight, conv_bias, bias, **settings)
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias, **settings)) <= TOLERANCE[torch.float32]


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
