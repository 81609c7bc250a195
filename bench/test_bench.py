"""A/B suite: fusedlse CUDA against Triton (tuned, seed) and PyTorch on every sweep problem.

The figures that matter are in each benchmark's extra_info, timed on the GPU with CUDA events (median, L2 flushed
before each run): median_ms, gbps (bytes of x / time), ratio_to_torch_sum and bw_frac (gbps / ceiling_gbps). The
pytest-benchmark statistics themselves are host wall-clock times of one synchronized call, launch overhead
included. Run: make bench (pytest bench --benchmark-json=build/bench-run.json, then
python bench/report.py --record build/bench-run.json: bench/results/<device>/latest.* and bench/results/history.csv).
"""
import pytest
import torch

from problems import PROVIDERS, SWEEP
from timing import back_to_back_us, graph_replay_us, median_ms

LAUNCH_BOUND = {"kb_old"}
COMPILE_MODEL_ON = {"headline", "kb_old"}  # the compiled model still runs the whole convolution: slow to tune


def _record(benchmark, provider, shape, x, ms, sum_ms, ceiling_gbps, **more):
    gbps = x.numel() * x.element_size() / ms / 1e6
    benchmark.extra_info.update(
        provider=provider, shape=shape, bytes=x.numel() * x.element_size(), dtype=str(x.dtype).split(".")[-1],
        median_ms=ms, gbps=gbps, torch_sum_ms=sum_ms, ratio_to_torch_sum=ms / sum_ms,
        ceiling_gbps=ceiling_gbps, bw_frac=gbps / ceiling_gbps, device=torch.cuda.get_device_name(),
        torch=torch.__version__, **more)


def _synchronized(call):
    def run():
        call()
        torch.cuda.synchronize()
    return run


@pytest.mark.parametrize("provider", list(PROVIDERS))
@pytest.mark.parametrize("shape", list(SWEEP))
def test_forward(benchmark, shape, provider, problem, sum_ms, ceiling_gbps):
    benchmark.group = shape
    fn = PROVIDERS[provider]()
    if fn is None:
        pytest.skip(f"{provider} does not exist yet")
    if provider == "torch_model_compiled" and shape not in COMPILE_MODEL_ON:
        pytest.skip("torch.compile of the full model is benchmarked on the headline and kb_old problems only")
    args = problem(shape)
    call = lambda: fn(*args)  # noqa: E731
    ms = median_ms(call)
    more = {}
    if shape in LAUNCH_BOUND:
        more["back_to_back_us"] = back_to_back_us(call)
    _record(benchmark, provider, shape, args[0], ms, sum_ms(shape), ceiling_gbps, **more)
    benchmark.pedantic(_synchronized(call), rounds=max(5, min(100, int(200 / max(ms, 1e-3)))), warmup_rounds=2)


@pytest.mark.parametrize("shape", sorted(LAUNCH_BOUND))
def test_forward_cuda_graph(benchmark, shape, problem, sum_ms, ceiling_gbps):
    """fusedlse CUDA captured in a CUDA graph: what a replay costs per call on a launch-bound problem."""
    import fusedlse_cuda

    benchmark.group = shape
    args = problem(shape)
    call = lambda: fusedlse_cuda.forward(*args)  # noqa: E731
    per_call_us = graph_replay_us(call)
    _record(benchmark, "cuda_graph", shape, args[0], per_call_us / 1000, sum_ms(shape), ceiling_gbps,
            replay_us=per_call_us)
    benchmark.pedantic(_synchronized(call), rounds=50, warmup_rounds=2)
