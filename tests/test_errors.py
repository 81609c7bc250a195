"""Every bad input gives a clear error naming the argument, with expected vs got, and leaves no CUDA error."""
import pytest
import torch

import fusedlse_cuda
from helpers import DEVICES, HAS_CUDA, make_problem


def good(device="cpu"):
    x, weight, conv_bias, bias = make_problem(2, 3, 5, 5, 4, 3, 3, device=device)
    return dict(x=x, weight=weight, conv_bias=conv_bias, bias=bias)


def call(args):
    return fusedlse_cuda.forward(args["x"], args["weight"], args["conv_bias"], args["bias"])


def replaced(device, **changes):
    args = good(device)
    args.update({k: (v(args) if callable(v) else v) for k, v in changes.items()})
    return args


BAD = {
    "x_not_4d": (dict(x=lambda a: a["x"][0]), r"x must be 4-D \[B, C_in, H, W\], got 3-D"),
    "weight_not_4d": (dict(weight=lambda a: a["weight"][..., 0]), r"weight must be 4-D .* got 3-D"),
    "c_in_mismatch": (dict(weight=lambda a: a["weight"][:2]), r"weight.shape\[0\] must equal x's C_in = 3"),
    "bias_numel": (dict(bias=lambda a: a["bias"][:3]), r"bias must be one value per output channel as the model "
                   r"broadcasts it: shape \[C_out, 1, 1\] = \[4, 1, 1\] .*got shape \[3, 1, 1\]"),
    "conv_bias_shape": (dict(conv_bias=lambda a: a["conv_bias"].reshape(2, 2)),
                        r"conv_bias must have shape \[C_out\] = \[4\], got \[2, 2\]"),
    "x_int": (dict(x=lambda a: a["x"].to(torch.int32)), r"x must be float16, bfloat16, float32 or float64, got Int"),
    "x_bool": (dict(x=lambda a: a["x"] > 0), r"x must be float16, bfloat16, float32 or float64, got Bool"),
    "x_complex": (dict(x=lambda a: a["x"].to(torch.complex64)),
                  r"x must be float16, bfloat16, float32 or float64, got ComplexFloat"),
    "weight_dtype": (dict(weight=lambda a: a["weight"].double()),
                     r"weight has dtype Double but x has dtype Float; convert one side first"),
    "bias_dtype": (dict(bias=lambda a: a["bias"].half()), r"bias has dtype Half but x has dtype Float"),
    "conv_bias_dtype": (dict(conv_bias=lambda a: a["conv_bias"].bfloat16()),
                        r"conv_bias has dtype BFloat16 but x has dtype Float"),
    "weight_int": (dict(weight=lambda a: a["weight"].long()), r"weight must be float16, bfloat16, float32 or float64"),
    "empty_plane": (dict(x=lambda a: a["x"][:, :, :0]), r"x must have C_in, H and W of at least 1"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
@pytest.mark.parametrize("device", DEVICES)
def test_bad_forward_arguments(device, case):
    changes, message = BAD[case]
    with pytest.raises(RuntimeError, match=message):
        call(replaced(device, **changes))
    if device == "cuda":
        torch.cuda.synchronize()  # a CUDA error left behind would raise here


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
@pytest.mark.parametrize("moved", ["weight", "bias", "conv_bias"])
def test_tensors_on_cpu_and_cuda(moved):
    args = good("cuda")
    args[moved] = args[moved].cpu()
    with pytest.raises(RuntimeError, match=rf"{moved} is on cpu but x is on cuda:0"):
        call(args)
    torch.cuda.synchronize()


BAD_SETTINGS = {
    "negative_padding": (dict(padding=-1), r"padding must be non-negative, got \[-1, -1\]"),
    "zero_groups": (dict(groups=0), r"groups must be positive, got 0"),
    "zero_stride": (dict(stride=(1, 0)), r"stride must be positive, got \[1, 0\]"),
    "zero_dilation": (dict(dilation=0), r"dilation must be positive, got \[0, 0\]"),
    "output_padding_too_big": (dict(stride=2, output_padding=2),
                               r"output_padding must be non-negative and smaller than either stride or dilation, "
                               r"got output_padding \[2, 2\], stride \[2, 2\], dilation \[1, 1\]"),
    "stride_triple": (dict(stride=(1, 2, 3)), r"stride must be an int or a pair \(height, width\), got \(1, 2, 3\)"),
}


@pytest.mark.parametrize("case", list(BAD_SETTINGS), ids=list(BAD_SETTINGS))
@pytest.mark.parametrize("device", DEVICES)
def test_bad_conv_settings(device, case):
    """The op, and ModelNew when it is built, name the setting they cannot compute or nn.ConvTranspose2d rejects."""
    settings, message = BAD_SETTINGS[case]
    args = good(device)
    # The C++ checks raise RuntimeError; the Python parsing of an int-or-pair (before them) raises ValueError.
    with pytest.raises((RuntimeError, ValueError), match=message):
        fusedlse_cuda.forward(args["x"], args["weight"], args["conv_bias"], args["bias"], **settings)
    with pytest.raises((RuntimeError, ValueError), match=message):
        fusedlse_cuda.ModelNew(3, 6, 3, (6, 1, 1), **settings)


@pytest.mark.parametrize("device", DEVICES)
def test_settings_that_only_the_tensors_rule_out(device):
    """Settings nn.ConvTranspose2d builds a module for but refuses for these tensors: named by the op."""
    args = good(device)  # x [2, 3, 5, 5], weight [3, 4, 3, 3]: full output 7 x 7
    with pytest.raises(RuntimeError, match=r"x's C_in = 3 must be divisible by groups = 2"):
        fusedlse_cuda.forward(*args.values(), groups=2)
    with pytest.raises(RuntimeError, match=r"padding \[4, 0\] crops the whole output: H_out = 7 - 2 \* 4 must be "
                                           r"at least 1"):
        fusedlse_cuda.forward(*args.values(), padding=(4, 0))
    with pytest.raises(RuntimeError, match=r"padding \[0, 4\] crops the whole output: W_out = 7 - 2 \* 4"):
        torch.ops.fusedlse.check_forward(*args.values(), padding=[0, 4])
    assert fusedlse_cuda.forward(*args.values(), padding=(0, 3)).shape == (2, 1)  # H_out = 7, W_out = 1 is allowed


@pytest.mark.parametrize("device", DEVICES)
def test_bad_sum_hw_arguments(device):
    x = good(device)["x"]
    with pytest.raises(RuntimeError, match=r"x must be 4-D"):
        fusedlse_cuda.sum_hw(x[0])
    with pytest.raises(RuntimeError, match=r"x must be float16, bfloat16, float32 or float64, got Long"):
        fusedlse_cuda.sum_hw(x.long())


@pytest.mark.parametrize("device", DEVICES)
def test_bad_gemm_lse_arguments(device):
    sums = torch.randn(2, 3, device=device)
    wsum = torch.randn(3, 4, device=device)
    bias = torch.randn(4, device=device)
    with pytest.raises(RuntimeError, match=r"sums must be 2-D \[B, C_in\], got shape \[6\]"):
        fusedlse_cuda.gemm_lse(sums.flatten(), wsum, bias, 1.0)
    with pytest.raises(RuntimeError, match=r"weight_sum.shape\[0\] must equal sums.shape\[1\] = 3"):
        fusedlse_cuda.gemm_lse(sums, wsum[:2], bias, 1.0)
    with pytest.raises(RuntimeError, match=r"total_bias must hold C_out = 4 elements"):
        fusedlse_cuda.gemm_lse(sums, wsum, bias[:3], 1.0)
    with pytest.raises(RuntimeError, match=r"sums must be float32 or float64 .* got Half"):
        fusedlse_cuda.gemm_lse(sums.half(), wsum.half(), bias.half(), 1.0)
    with pytest.raises(RuntimeError, match=r"weight_sum has dtype Double but sums has dtype Float"):
        fusedlse_cuda.gemm_lse(sums, wsum.double(), bias, 1.0)


@pytest.mark.parametrize("device", DEVICES)
def test_bad_broadcast_hw_arguments(device):
    rows = torch.randn(2, 3, device=device)
    with pytest.raises(RuntimeError, match=r"rows must be 2-D \[B, C\], got shape \[6\]"):
        fusedlse_cuda.broadcast_hw(rows.flatten(), 4, 5, torch.float32)
    with pytest.raises(RuntimeError, match=r"rows must have dtype Double \(the accumulation type of Double\), got Float"):
        fusedlse_cuda.broadcast_hw(rows, 4, 5, torch.float64)
    with pytest.raises(RuntimeError, match=r"rows must have dtype Float \(the accumulation type of BFloat16\), got "
                                           r"BFloat16"):
        fusedlse_cuda.broadcast_hw(rows.bfloat16(), 4, 5, torch.bfloat16)
    with pytest.raises(RuntimeError, match=r"dtype must be float16, bfloat16, float32 or float64, got Int"):
        fusedlse_cuda.broadcast_hw(rows, 4, 5, torch.int32)
    with pytest.raises(RuntimeError, match=r"height and width must be non-negative, got -1 and 5"):
        fusedlse_cuda.broadcast_hw(rows, -1, 5, torch.float32)
    with pytest.raises(ValueError, match=r"memory_format must be torch.contiguous_format or torch.channels_last"):
        fusedlse_cuda.broadcast_hw(rows, 4, 5, torch.float32, torch.preserve_format)
