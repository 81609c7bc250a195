"""torch.library.opcheck on every op: schema, fake (Meta) kernels, dispatch and autograd registration agree; with
inputs that require grad it also runs each op's backward through AOT autograd."""
import pytest
import torch

from helpers import DEVICES, make_problem


def samples(device):
    for dtype in (torch.float32, torch.float16):
        x, weight, conv_bias, bias = make_problem(2, 3, 6, 5, 4, 3, 2, dtype=dtype, device=device)
        yield "forward", (x, weight, conv_bias, bias)
        yield "forward", (x.contiguous(memory_format=torch.channels_last), weight, None, bias)
        yield "sum_hw", (x,)
        grad = [t.detach().requires_grad_() for t in (x, weight, conv_bias, bias)]
        yield "forward", tuple(grad)
        yield "forward", (*grad, [2, 1], [0, 0], [1, 0], [1, 2], 1)
        yield "forward", (x, grad[1], None, grad[3], [1, 3])
        yield "forward", (*grad, [2, 1], [1, 2], [1, 0], [1, 2], 1)  # padding: per-tap sums
        yield "forward", (x, weight, conv_bias, bias, [2, 1], [1, 2], [1, 0], [1, 2], 1, False)  # no sums kept
        yield "forward", (x, weight, None, bias, [1, 1], [0, 0], [0, 0], [1, 1], 1, False)
        x4, weight4, conv_bias4, bias4 = make_problem(2, 4, 6, 5, 4, 3, 2, dtype=dtype, device=device)
        grouped = [t.requires_grad_() for t in (x4, weight4[:, :2].contiguous(), conv_bias4, bias4)]
        yield "forward", (*grouped, [1, 1], [0, 0], [0, 0], [1, 1], 2)  # weight [4, 2, 3, 2]: C_out 4
        yield "forward", (*grouped, [1, 2], [1, 1], [0, 0], [1, 1], 2)
        yield "tap_sums", (x, [3, 2], [2, 1], [1, 2], [1, 0], [1, 2])
        yield "tap_sums", (grad[0], [3, 2], [1, 1], [2, 1])
        yield "sum_hw", (grad[0],)
    sums = torch.randn(2, 3, device=device)
    for dtype, channels_last in ((torch.float32, False), (torch.bfloat16, True)):
        yield "broadcast_hw", (sums, 5, 3, dtype, channels_last)
        yield "broadcast_hw", (sums.clone().requires_grad_(), 5, 3, dtype, channels_last)
    taps = torch.randn(2, 3, 3, 2, device=device)
    yield "broadcast_taps", (taps, 6, 5, torch.float32, [2, 1], [1, 2], [1, 0], [1, 2], False)
    yield "broadcast_taps", (taps.clone().requires_grad_(), 6, 5, torch.bfloat16, [1, 1], [2, 1], [0, 0], [1, 1],
                             True)
    yield "gemm_lse", (sums, torch.randn(3, 4, device=device), torch.randn(4, device=device), 0.25)
    yield "gemm_lse", tuple(t.requires_grad_() for t in (sums.clone(), torch.randn(3, 4, device=device),
                                                         torch.randn(4, device=device))) + (0.25,)


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    for name, args in samples(device):
        torch.library.opcheck(getattr(torch.ops.fusedlse, name).default, args)


@pytest.mark.parametrize("device", DEVICES)
def test_forward_traces_under_torch_compile(device):
    import fusedlse_cuda

    x, weight, conv_bias, bias = make_problem(2, 3, 6, 5, 4, 3, 2, device=device)
    compiled = torch.compile(fusedlse_cuda.forward, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x, weight, conv_bias, bias), fusedlse_cuda.forward(x, weight, conv_bias, bias))
