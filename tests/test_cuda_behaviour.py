"""CUDA-only properties: reproducibility, CUDA-graph capture, streams, devices, 64-bit offsets."""
import pytest
import torch

import fusedlse_cuda
from fusedlse_cuda import reference
from helpers import HAS_CUDA, TOLERANCE, make_problem, rel_err

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")]


@pytest.mark.usefixtures("fused_only")
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
# Split rows; long rows of few channels; multi-batch units of short rows; self-contained batch tiles (KernelBench's
# older shape).
@pytest.mark.parametrize("shape", [(2, 300, 40, 50, 64, 3, 3), (1, 4, 1024, 1024, 128, 3, 3), (64, 96, 9, 9, 200, 3, 3),
                                   (128, 3, 32, 32, 16, 3, 3)], ids=str)
def test_bitwise_reproducible(shape, layout):
    x, weight, conv_bias, bias = make_problem(*shape, device="cuda", layout=layout)
    first = fusedlse_cuda.forward(x, weight, conv_bias, bias)
    sums = fusedlse_cuda.sum_hw(x)
    for _ in range(5):
        assert torch.equal(fusedlse_cuda.forward(x, weight, conv_bias, bias), first)
        assert torch.equal(fusedlse_cuda.sum_hw(x), sums)
    assert rel_err(first, reference.truth(x, weight, conv_bias, bias)) <= TOLERANCE[torch.float32]


@pytest.mark.usefixtures("fused_only")
# Several units per batch, so both ticket levels are exercised; and self-contained batch tiles, with no tickets.
@pytest.mark.parametrize("shape", [(4, 40, 33, 35, 300, 3, 3), (128, 3, 32, 32, 16, 3, 3)], ids=str)
def test_cuda_graph_replay_on_new_data(shape):
    x, weight, conv_bias, bias = make_problem(*shape, device="cuda", seed=1)
    static_x = x.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fusedlse_cuda.forward(static_x, weight, conv_bias, bias)  # warm-up: sizes the ticket buffer
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = fusedlse_cuda.forward(static_x, weight, conv_bias, bias)
    for seed in (2, 3, 4):
        fresh, new_weight, *_ = make_problem(*shape, device="cuda", seed=seed)
        static_x.copy_(fresh)
        weight.copy_(new_weight)  # parameters updated in place between replays must be seen too
        static_out.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        assert rel_err(static_out, reference.truth(fresh, new_weight, conv_bias, bias)) <= TOLERANCE[torch.float32]


def test_side_stream_and_interleaved_shapes():
    problems = [make_problem(*s, device="cuda", seed=i) for i, s in
                enumerate([(3, 50, 20, 20, 700, 3, 3), (1, 2, 300, 301, 5, 2, 2), (8, 7, 5, 5, 9, 1, 1)])]
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        outs = [fusedlse_cuda.forward(*p) for p in problems for _ in range(2)]
    stream.synchronize()
    for i, p in enumerate(problems):
        for out in outs[2 * i:2 * i + 2]:
            assert rel_err(out, reference.truth(*p)) <= TOLERANCE[torch.float32]


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_second_device():
    x, weight, conv_bias, bias = make_problem(2, 3, 30, 30, 8, 3, 3, device="cuda:1")
    assert rel_err(fusedlse_cuda.forward(x, weight, conv_bias, bias), reference.truth(x, weight, conv_bias, bias)) \
        <= TOLERANCE[torch.float32]


@pytest.mark.large
@pytest.mark.skipif(HAS_CUDA and torch.cuda.get_device_properties(0).total_memory < 20 * 2**30,
                    reason="needs 20 GiB of GPU memory")
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_more_than_2_pow_31_elements(layout):
    """64-bit offsets: 2 x 3 x 19000 x 19000 float16 = 2.17e9 elements; truth from the float64 shortcut."""
    batch, c_in, side, c_out = 2, 3, 19000, 6
    g = torch.Generator(device="cuda").manual_seed(0)
    memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = torch.empty(batch, c_in, side, side, dtype=torch.float16, device="cuda", memory_format=memory_format)
    assert x.numel() > 2**31
    offsets = torch.randn(batch, c_in, 1, 1, device="cuda", generator=g) * 2
    for b in range(batch):
        for c in range(c_in):
            x[b, c].normal_(generator=g).add_(offsets[b, c, 0, 0])
    weight = torch.randn(c_in, c_out, 3, 3, device="cuda", generator=g).half()
    conv_bias = torch.randn(c_out, device="cuda", generator=g).half()
    bias = torch.randn(c_out, 1, 1, device="cuda", generator=g).half()
    sums = torch.stack([x[b].double().sum(dim=(1, 2)) for b in range(batch)])
    area = (side + 2) ** 2
    logits = sums @ weight.double().sum((2, 3)) / area + conv_bias.double() + bias.double().flatten()
    truth = 10 * torch.logsumexp(logits, dim=1, keepdim=True)
    out = fusedlse_cuda.forward(x, weight, conv_bias, bias)
    assert rel_err(out, truth) <= TOLERANCE[torch.float16]
    assert ((fusedlse_cuda.sum_hw(x).double() - sums).abs() / sums.abs().clamp_min(1)).max().item() < 1e-4
