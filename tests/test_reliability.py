"""No silent wrong answer and no crash at the edges: launches that overlap, a full GPU, infinities, every bias shape
the model accepts, forward-mode AD and torch.func, settings parsed as nn.ConvTranspose2d parses them, devices (meta
included) and memory. The two-GPU cases are in test_multi_gpu.py, the sanitizer runs in test_sanitizers.py."""
import ctypes
import os
import re
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import torch

import fusedlse_cuda
from fusedlse_cuda import reference, shape
from fusedlse_cuda.planning import forced_plan
from helpers import DEVICES, DTYPES, HAS_CUDA, TOLERANCE, TRITON_DEVICES, make_problem, rel_err

def check_truth(out, x, weight, conv_bias, bias, dtype=torch.float32, **settings):
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias, **settings)) <= TOLERANCE[dtype]


# --- 1. Launches that may overlap never share ticket state ----------------------------------------------------------

# Ticketed launches (several epilogue units per batch, weight-fold blocks) small enough that launches from two
# streams run side by side on the GPU; a graph of CALLS_PER_GRAPH of them keeps two replays overlapping throughout.
SIDE_BY_SIDE = (2, 64, 16, 32, 300, 3, 3)
TICKETED = (8, 96, 48, 64, 300, 3, 3)
CALLS_PER_GRAPH = 24


def capture(stream, call, calls=CALLS_PER_GRAPH):
    """A graph of `calls` calls of `call()` captured on `stream` after a warm-up call there (as torch.compile's
    reduce-overhead mode does), and their outputs."""
    stream.wait_stream(torch.cuda.current_stream())
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.stream(stream):
        call()
        with torch.cuda.graph(graph, stream=stream):
            outs = [call() for _ in range(calls)]
    return graph, outs


def assert_all_right(outs, truth, tolerance=TOLERANCE[torch.float32]):
    errors = [rel_err(out, truth) for out in outs]
    assert max(errors) <= tolerance, errors


def replay_at_once(graphs, truths, rounds=10, tolerance=TOLERANCE[torch.float32]):
    """Replays each (graph, outputs) on a stream of its own, all at once, `rounds` times; every output must be right
    every time (a ticket count corrupted in one round would show in the later ones too)."""
    streams = [torch.cuda.Stream() for _ in graphs]
    for _ in range(rounds):
        for (_, outs), stream in zip(graphs, streams):
            for out in outs:
                out.fill_(float("nan"))
            stream.wait_stream(torch.cuda.current_stream())
        for (graph, _), stream in zip(graphs, streams):
            with torch.cuda.stream(stream):
                graph.replay()
        torch.cuda.synchronize()
        for (_, outs), truth in zip(graphs, truths):
            assert_all_right(outs, truth, tolerance)


@pytest.mark.usefixtures("fused_only")
@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
def test_graphs_captured_on_one_stream_replay_at_once():
    """Two graphs captured on one stream after a warm-up call there (torch.compile's mode="reduce-overhead"), replayed
    at the same time on two streams: they must not share tickets."""
    problems = [make_problem(*SIDE_BY_SIDE, device="cuda", seed=s) for s in (1, 2)]
    capture_stream = torch.cuda.Stream()
    graphs = [capture(capture_stream, lambda p=p: fusedlse_cuda.forward(*p)) for p in problems]
    replay_at_once(graphs, [reference.truth(*p) for p in problems])


@pytest.mark.usefixtures("fused_only")
@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
def test_graph_replay_beside_eager_calls_on_its_capture_stream():
    graph_problem, eager_problem = (make_problem(*SIDE_BY_SIDE, device="cuda", seed=s) for s in (3, 4))
    capture_stream, replay_stream = torch.cuda.Stream(), torch.cuda.Stream()
    graph, graph_outs = capture(capture_stream, lambda: fusedlse_cuda.forward(*graph_problem))
    graph_truth, eager_truth = reference.truth(*graph_problem), reference.truth(*eager_problem)
    for _ in range(10):
        replay_stream.wait_stream(torch.cuda.current_stream())
        capture_stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(replay_stream):
            graph.replay()
        with torch.cuda.stream(capture_stream):
            eager = [fusedlse_cuda.forward(*eager_problem) for _ in range(CALLS_PER_GRAPH)]
        torch.cuda.synchronize()
        assert_all_right(graph_outs, graph_truth)
        assert_all_right(eager, eager_truth)


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
def test_padded_graphs_replay_at_once():
    """Padded forwards through the tap kernels (runs of many warps a plane: the least run forced off, so that each
    plane's runs are combined by the next launch), on the shares' path and on the cells' path (its reader beside the
    cells' weight); captured on one stream and replayed at once on two: every output right every round, and bitwise
    the eager forward's."""
    from fusedlse_cuda.planning import forced_tap_min_run_bytes

    cases = [((8, 8, 96, 96, 4, 3, 3), torch.float32, "tap_shares"),
             ((32, 2, 31, 44, 600, 4, 3), torch.float16, "cells")]
    problems = [make_problem(*case, dtype=dtype, device="cuda", seed=seed)
                for seed, (case, dtype, _) in enumerate(cases)]
    capture_stream = torch.cuda.Stream()
    graphs, eager = [], []
    for p, (case, _, gemm) in zip(problems, cases):
        plan = fusedlse_cuda.explain(p[0], p[1], padding=1)
        assert plan["tap_sums"] == "kernels", (case, plan)
        if gemm == "tap_shares":
            assert plan["gemm"]["strategy"] == "tap_shares", (case, plan)
        else:
            assert plan["gemm"]["strategy"] != "tap_shares" and plan["gemm_over"] == "cells", (case, plan)
        with forced_tap_min_run_bytes(0):
            eager.append(fusedlse_cuda.forward(*p, padding=1))
            graphs.append(capture(capture_stream, lambda p=p: fusedlse_cuda.forward(*p, padding=1)))
    truths = [reference.truth(*p, padding=1) for p in problems]
    replay_at_once(graphs, truths, tolerance=TOLERANCE[torch.float16])
    for (_, outs), out, truth, (case, dtype, _) in zip(graphs, eager, truths, cases):
        assert rel_err(out, truth) <= TOLERANCE[dtype], case
        assert all(torch.equal(o, out) for o in outs), case


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
def test_gemm_lse_graphs_replay_at_once():
    g = torch.Generator().manual_seed(5)
    inputs = [tuple(t.cuda() for t in (torch.randn(64, 300, generator=g), torch.randn(300, 700, generator=g) / 10,
                                        torch.randn(700, generator=g))) for _ in range(2)]
    capture_stream = torch.cuda.Stream()
    graphs = [capture(capture_stream, lambda a=a: fusedlse_cuda.gemm_lse(*a, 0.01)) for a in inputs]
    truths = [10 * torch.logsumexp(s.double() @ w.double() * 0.01 + b.double(), 1, keepdim=True) for s, w, b in inputs]
    replay_at_once(graphs, truths, tolerance=1e-5)


# --- 2. Out of memory surfaces in the caller ------------------------------------------------------------------------

OOM_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import torch, fusedlse_cuda
    from fusedlse_cuda import reference
    from helpers import make_problem, rel_err
    # Unaligned rows: a ticketed launch (not self-contained) whose outputs and scratch take a few hundred bytes.
    problem = make_problem(2, 3, 16, 16, 5, 3, 3, device="cuda", layout="offset")
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):  # loads the kernels and sizes everything, on a stream the test will not use again
        fusedlse_cuda.forward(*problem)
    torch.cuda.synchronize()
    # The allocator's limit, not the device's memory, runs out: the error reaches the caller the same way, and the
    # tests running beside this one on the same GPU (pytest -n) keep theirs (a whole-device hog made one of them
    # fail with an out-of-memory error of its own).
    total = torch.cuda.mem_get_info()[1]
    torch.cuda.set_per_process_memory_fraction(min(1.0, (torch.cuda.memory_reserved() + (1 << 30)) / total))
    hog = []
    for size in (1 << 28, 1 << 25, 1 << 21, 1 << 19, 1 << 16):  # every segment size of the allocator, to its limit
        while True:
            try:
                hog.append(torch.empty(size, dtype=torch.uint8, device="cuda"))
            except torch.OutOfMemoryError:
                break
    hole = None
    try:
        hole = torch.empty(16 << 10, dtype=torch.uint8, device="cuda")
    except torch.OutOfMemoryError:
        pass
    for size in (4096, 512):
        while True:
            try:
                hog.append(torch.empty(size, dtype=torch.uint8, device="cuda"))
            except torch.OutOfMemoryError:
                break
    del hole  # 16 KiB free in one place: enough for the outputs and scratch, not for a 16 KiB ticket buffer too
    try:
        out = fusedlse_cuda.forward(*problem)
        torch.cuda.synchronize()
        print("ran", rel_err(out, reference.truth(*problem)))
    except torch.OutOfMemoryError:
        print("oom")
    del hog
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(1.0)
    out = fusedlse_cuda.forward(*problem)
    print("after", rel_err(out, reference.truth(*problem)))
""")


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
def test_out_of_memory_is_an_error_in_the_caller(tmp_path):
    script = tmp_path / "oom.py"
    script.write_text(OOM_SCRIPT.format(tests=os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.split("\n")
    first = next(line for line in lines if line.startswith(("ran", "oom")))
    if first.startswith("ran"):
        assert float(first.split()[1]) <= TOLERANCE[torch.float32]
    after = next(line for line in lines if line.startswith("after"))
    assert float(after.split()[1]) <= TOLERANCE[torch.float32]


# --- 3. Infinities and NaN as torch.logsumexp has them -------------------------------------------------------------

INF = float("inf")
# (bias values by channel, conv_bias values by channel); unnamed channels keep their random values.
SPECIAL = {
    "one_plus_inf": ({1: INF}, {}),
    "two_plus_inf": ({1: INF, 4: INF}, {}),
    "plus_and_minus_inf": ({1: INF}, {2: -INF, 5: -INF}),
    "conv_bias_plus_inf": ({}, {0: INF, 3: INF}),
    "all_minus_inf": ({"all": -INF}, {}),
    "nan": ({2: float("nan")}, {}),
    "nan_and_plus_inf": ({2: float("nan"), 3: INF}, {}),
}


def assert_same_specials(out, truth, dtype):
    out, truth = out.detach().double().cpu(), truth.double()
    assert torch.equal(out.isnan(), truth.isnan()), (out.flatten(), truth.flatten())
    assert torch.equal(out.isposinf(), truth.isposinf()), (out.flatten(), truth.flatten())
    assert torch.equal(out.isneginf(), truth.isneginf()), (out.flatten(), truth.flatten())
    finite = truth.isfinite()
    if finite.any():
        assert rel_err(out[finite], truth[finite]) <= TOLERANCE[dtype]


def special_problem(case, dtype, device, shape=(3, 4, 6, 5, 7, 3, 3)):
    x, weight, conv_bias, bias = make_problem(*shape, dtype=dtype, device=device)
    bias_values, conv_values = SPECIAL[case]
    for c, v in bias_values.items():
        bias[slice(None) if c == "all" else c] = v
    for c, v in conv_values.items():
        conv_bias[c] = v
    return x, weight, conv_bias, bias


@pytest.mark.parametrize("case", list(SPECIAL))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_infinities_and_nan_as_torch_logsumexp(device, dtype, case):
    problem = special_problem(case, dtype, device)
    assert_same_specials(fusedlse_cuda.forward(*problem), reference.truth(*problem), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_infinite_x_meets_the_sum_of_the_taps(device, dtype):
    """+inf in a plane of x. Where every tap of its channel's weight has one sign, fusedlse gives the model's +inf.
    Where the taps have both signs, the model's output pixels get +inf from some taps and -inf from others, so its
    mean is NaN. fusedlse sums the plane first and multiplies by the taps' sum, as the plain-torch shortcut does, so
    its logits are inf x W.sum: +inf here (README's Edges)."""
    x, weight, conv_bias, bias = make_problem(2, 3, 6, 5, 4, 3, 3, dtype=dtype, device=device)
    x[0, 1, 2, 2] = INF
    one_sign = weight.abs() + 0.01
    assert_same_specials(fusedlse_cuda.forward(x, one_sign, conv_bias, bias),
                         reference.truth(x, one_sign, conv_bias, bias), dtype)
    both_signs = one_sign.clone()
    both_signs[1, :, 0, 0] = -0.01  # channel 1's taps: one negative, their sum positive for every output channel
    assert (both_signs[1].double().sum(dim=(1, 2)) > 0).all()
    out = fusedlse_cuda.forward(x, both_signs, conv_bias, bias)
    truth = reference.truth(x, both_signs, conv_bias, bias)
    assert torch.isnan(truth[0]).all() and torch.isposinf(out[0]).all(), (out, truth)
    assert_same_specials(out[1:], truth[1:], dtype)


@pytest.mark.parametrize("case", list(SPECIAL))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("plan", [("fused", None, None), ("split", "plane_lanes", "tiled_lse"),
                                  ("split", "plane_lanes", "cublas_lse"), ("split", "plane_lanes", "rows_lse"),
                                  ("split", "plane_lanes", "narrow_lse"), ("split", "plane_lanes", "gemv_lse")],
                         ids=["fused", "split_tiled", "split_cublas", "split_rows_lse", "split_narrow_lse",
                              "split_gemv_lse"])
@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
def test_infinities_and_nan_in_each_cuda_strategy(plan, dtype, case):
    """The split strategy's epilogues keep the same semantics: the tiled one with tiles 8, 128 (C_out 300: three
    column tiles, merged across column runs) and 64 wide; cuBLAS's logsumexp kernels with 8 and 32 lanes per row
    (C_out 7 and 300) and a block per row (C_out 700); the rows epilogue with 8 and 32 lanes per row (C_out 7,
    60); the narrow one with 8 and 32 columns (C_out 7; 20 on 70 channels, 32 lanes a group), the others falling
    back to the tiled one; the gemv one with 1, 2 and 4 slices of the channels (C_out 700 down to 7)."""
    for size in [(3, 4, 6, 5, 7, 3, 3), (5, 3, 2, 2, 300, 3, 3), (5, 3, 2, 2, 700, 3, 3), (300, 3, 2, 2, 60, 3, 3),
                 (6, 70, 2, 2, 20, 1, 1)]:
        problem = special_problem(case, dtype, "cuda", shape=size)
        with forced_plan(*plan):
            out = fusedlse_cuda.forward(*problem)
        assert_same_specials(out, reference.truth(*problem), dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
def test_infinities_through_cublas_bf16_pieces(dtype):
    """cuBLAS's GEMM over bfloat16 pieces (16-bit x, sides of 256 or more: explain's cublas_factors) puts a value that
    is not finite into its factor's first piece alone, so it meets the other factor once, as in a float32 GEMM: +inf
    in a plane (its row's logits +inf), NaN in another (its row NaN), -inf in a tap of output channel 20 over input
    channel 11's positive planes (every row's logit -inf there, the other rows finite), +inf meeting it in row 3
    (NaN)."""
    x, weight, conv_bias, bias = make_problem(256, 256, 2, 1, 512, 1, 2, dtype=dtype, device="cuda")
    weight = weight.abs() + 0.01
    x[:, 11] = x[:, 11].abs() + 0.1
    x[3, 7, 0, 0] = INF
    x[5, 9, 1, 0] = float("nan")
    weight[11, 20, 0, 1] = -INF
    with forced_plan("split", "plane_lanes", "cublas_lse"):
        out = fusedlse_cuda.forward(x, weight, conv_bias, bias)
    truth = reference.truth(x, weight, conv_bias, bias)
    assert truth[3].isnan().all() and truth[5].isnan().all() and truth.isfinite().sum() == 254, truth.flatten()
    assert_same_specials(out, truth, dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
def test_infinities_through_the_bf16_tile(dtype):
    """The tiled epilogue's bfloat16 tensor-core tile (explain's tiled_tile 6, where the device's tensor cores pay)
    cuts its factors as cuBLAS's pieces do, so a value that is not finite meets the other factor once: +inf in a
    plane (its row +inf), NaN in another (its row NaN), -inf in a tap of output channel 20 over input channel 11's
    positive planes (every row's logit -inf there, the other rows finite), +inf meeting it in row 3 (NaN); rows of
    both row tiles' blocks and both column tiles."""
    x, weight, conv_bias, bias = make_problem(17000, 37, 2, 1, 65, 1, 2, dtype=dtype, device="cuda")
    weight = weight.abs() + 0.01
    x[:, 11] = x[:, 11].abs() + 0.1
    x[3, 7, 0, 0] = INF
    x[5, 9, 1, 0] = float("nan")
    x[16900, 30, 0, 0] = INF
    weight[11, 20, 0, 1] = -INF
    with forced_plan("split", "plane_lanes", "tiled_lse"):
        plan = fusedlse_cuda.explain(x, weight)
        if plan["device"]["bf16_gflops"] < 8 * plan["device"]["fp32_gflops"]:
            pytest.skip(f"the bfloat16 tile does not pay here: {plan['device']}")
        assert plan["tiled_tile"] == 6, plan
        out = fusedlse_cuda.forward(x, weight, conv_bias, bias)
    truth = reference.truth(x, weight, conv_bias, bias)
    assert truth[[3, 5, 16900]].isnan().all() and truth.isfinite().sum() == 16997, truth.flatten()
    assert_same_specials(out, truth, dtype)


@pytest.mark.usefixtures("fused_only")
@pytest.mark.parametrize("case", list(SPECIAL))
@pytest.mark.parametrize("device", DEVICES)
def test_infinities_in_a_ticketed_launch(device, case):
    """Many units per batch and a logsumexp merged across threads: the CUDA kernel's multi-unit epilogue."""
    problem = special_problem(case, torch.float32, device, shape=(5, 300, 20, 30, 7, 3, 3))
    assert_same_specials(fusedlse_cuda.forward(*problem), reference.truth(*problem), torch.float32)


@pytest.mark.parametrize("case", list(SPECIAL))
@pytest.mark.parametrize("device", DEVICES)
def test_gemm_lse_infinities(device, case):
    g = torch.Generator().manual_seed(0)
    sums, weight_sum = torch.randn(5, 40, generator=g), torch.randn(40, 300, generator=g) / 10
    total_bias = torch.randn(300, generator=g)
    bias_values, conv_values = SPECIAL[case]
    for c, v in {**bias_values, **conv_values}.items():
        total_bias[slice(None) if c == "all" else c] = v
    truth = 10 * torch.logsumexp(sums.double() @ weight_sum.double() * 0.1 + total_bias.double(), 1, keepdim=True)
    out = fusedlse_cuda.gemm_lse(sums.to(device), weight_sum.to(device), total_bias.to(device), 0.1)
    assert_same_specials(out, truth, torch.float32)




@pytest.mark.parametrize("case", list(SPECIAL))
@pytest.mark.parametrize("device", TRITON_DEVICES)
def test_tuned_triton_rival_infinities(device, case):
    """One C_out tile and several (whose statistics are merged): the rival keeps torch.logsumexp's semantics too."""
    from triton_ref import tuned

    for dims in ((3, 4, 6, 5, 7, 3, 3), (3, 40, 6, 5, 150, 3, 3)):
        problem = special_problem(case, torch.float32, device, shape=dims)
        assert_same_specials(tuned.forward(*problem), reference.truth(*problem), torch.float32)


@pytest.mark.parametrize("device", DEVICES)
def test_float32_sums_overflow_like_the_float32_model(device):
    """Sums past float32's range: the float32 model gives +inf, so must the op (not NaN from inf - inf)."""
    x, weight, conv_bias, bias = make_problem(2, 3, 16, 16, 5, 3, 3, device=device)
    x = x.abs() * 1e37 + 1e37
    weight = weight.abs() + 0.1
    expected = reference.model_forward(x, weight, conv_bias, bias)
    assert expected.isposinf().all()
    out = fusedlse_cuda.forward(x, weight, conv_bias, bias)
    assert out.isposinf().all(), out.flatten()


# --- 4. Bias shapes: the op takes one value per channel; ModelNew computes every shape Model accepts ---------------

@pytest.mark.parametrize("bias_shape", [(7,), (1, 7), (7, 1), (2, 7, 1, 1), (1, 1, 7), (1, 7, 1, 7)], ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_op_refuses_bias_the_model_broadcasts_along_b_h_or_w(device, bias_shape):
    x, weight, conv_bias, _ = make_problem(2, 3, 4, 4, 7, 3, 3, device=device)
    bias = torch.randn(bias_shape, device=device)
    with pytest.raises(RuntimeError, match=r"bias must be one value per output channel as the model broadcasts it: "
                                           r"shape \[C_out, 1, 1\] = \[7, 1, 1\].* got shape \["):
        fusedlse_cuda.forward(x, weight, conv_bias, bias)


# Every shape broadcastable against Model's [B=2, C_out=7, 1, 1] means; each gives Model's own answer.
MODEL_BIAS_SHAPES = [(7, 1, 1), (1, 7, 1, 1), (), (1,), (7,), (1, 7), (7, 1), (2, 7, 1, 1), (2, 1, 1, 1), (1, 1, 7),
                     (3, 1), (1, 1, 1, 5), (2, 1, 3, 4), (1, 7, 2, 1)]


@pytest.mark.parametrize("bias_shape", MODEL_BIAS_SHAPES, ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_model_new_matches_model_for_every_bias_shape(device, bias_shape):
    torch.manual_seed(0)
    model = reference.Model(3, 7, 3, bias_shape).double().to(device)
    new = fusedlse_cuda.ModelNew.from_model(model)
    x = make_problem(2, 3, 5, 6, 7, 3, 3, dtype=torch.float64, device=device)[0].requires_grad_()
    expected = model(x)
    out = new(x)
    assert out.shape == expected.shape and rel_err(out, expected) <= 1e-10
    grads = torch.autograd.grad(out.sum(), (x, model.bias, model.conv_transpose.weight))
    truths = torch.autograd.grad(expected.sum(), (x, model.bias, model.conv_transpose.weight))
    for got, want in zip(grads, truths):
        assert rel_err(got, want) <= 1e-10


@pytest.mark.parametrize("bias_shape", [(7,), (1, 7, 1, 1)], ids=str)
def test_model_new_any_bias_shape_under_torch_compile(bias_shape):
    torch.manual_seed(3)
    model = reference.Model(3, 7, 3, bias_shape).double()
    compiled = torch.compile(fusedlse_cuda.ModelNew.from_model(model), fullgraph=True, backend="aot_eager")
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64, requires_grad=True)
    out = compiled(x)
    assert rel_err(out, model(x)) <= 1e-10
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert rel_err(grad, torch.autograd.grad(model(x).sum(), x)[0]) <= 1e-10


@pytest.mark.parametrize("bias_shape", [(7,), (1, 7), (7, 1)], ids=str)
def test_model_new_float32_broadcast_bias_against_float64_model(bias_shape):
    torch.manual_seed(1)
    model = reference.Model(3, 7, 3, bias_shape)
    new = fusedlse_cuda.ModelNew.from_model(model)
    x = make_problem(2, 3, 5, 6, 7, 3, 3)[0]
    truth = reference.truth(x, model.conv_transpose.weight, model.conv_transpose.bias, model.bias)
    assert rel_err(new(x), truth) <= TOLERANCE[torch.float32]


@pytest.mark.parametrize("device", TRITON_DEVICES)
def test_tuned_triton_rival_single_value_bias(device):
    from triton_ref import tuned

    x, weight, conv_bias, bias = make_problem(2, 3, 4, 4, 7, 3, 3, device=device)
    single = bias.flatten()[:1].reshape(1, 1, 1)
    check_truth(tuned.forward(x, weight, conv_bias, single), x, weight, conv_bias, single)
    with pytest.raises(RuntimeError, match=r"bias must be one value per output channel"):
        tuned.forward(x, weight, conv_bias, bias.flatten())


# --- 5. Forward-mode AD and torch.func ------------------------------------------------------------------------------

def real_model(x, weight, conv_bias, bias):
    return reference.model_forward(x, weight, conv_bias, bias)


@pytest.mark.parametrize("device", DEVICES)
def test_jvp_and_forward_ad_match_the_real_model(device):
    from torch.autograd import forward_ad

    primals = make_problem(2, 3, 5, 4, 6, 3, 2, dtype=torch.float64, device=device)
    tangents = tuple(torch.randn_like(p) for p in primals)
    _, expected = torch.func.jvp(real_model, primals, tangents)
    out, tangent = torch.func.jvp(fusedlse_cuda.forward, primals, tangents)
    assert rel_err(out, real_model(*primals)) <= 1e-10 and rel_err(tangent, expected) <= 1e-10
    assert tangent.abs().max() > 0
    with forward_ad.dual_level():
        duals = [forward_ad.make_dual(p, t) for p, t in zip(primals, tangents)]
        dual_tangent = forward_ad.unpack_dual(fusedlse_cuda.forward(*duals)).tangent
    assert dual_tangent is not None and rel_err(dual_tangent, expected) <= 1e-10


@pytest.mark.parametrize("device", DEVICES)
def test_func_jacobians_and_grad_match_the_real_model(device):
    x, weight, conv_bias, bias = make_problem(2, 3, 4, 4, 5, 2, 2, dtype=torch.float64, device=device)
    for argnums in (0, 1, 3):
        for transform in (torch.func.jacfwd, torch.func.jacrev):
            got = transform(fusedlse_cuda.forward, argnums=argnums)(x, weight, conv_bias, bias)
            want = torch.func.jacrev(real_model, argnums=argnums)(x, weight, conv_bias, bias)
            assert rel_err(got, want) <= 1e-10, (transform.__name__, argnums)
    loss = lambda w: fusedlse_cuda.forward(x, w, conv_bias, bias).sum()  # noqa: E731
    want = torch.func.grad(lambda w: real_model(x, w, conv_bias, bias).sum())(weight)
    assert rel_err(torch.func.grad(loss)(weight), want) <= 1e-10


@pytest.mark.parametrize("device", DEVICES)
def test_func_on_the_building_blocks(device):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64).to(device)
    sums = torch.randn(2, 3, generator=g, dtype=torch.float64).to(device)
    weight_sum = torch.randn(3, 4, generator=g, dtype=torch.float64).to(device)
    total_bias = torch.randn(4, generator=g, dtype=torch.float64).to(device)
    assert rel_err(torch.func.jacfwd(fusedlse_cuda.sum_hw)(x), torch.func.jacrev(lambda t: t.sum((2, 3)))(x)) == 0
    lse = lambda s, w: 10 * torch.logsumexp(s @ w * 0.5 + total_bias, 1, keepdim=True)  # noqa: E731
    fused = lambda s, w: fusedlse_cuda.gemm_lse(s, w, total_bias, 0.5)  # noqa: E731
    got = torch.func.jacfwd(fused, argnums=(0, 1))(sums, weight_sum)
    want = torch.func.jacrev(lse, argnums=(0, 1))(sums, weight_sum)
    assert all(rel_err(a, b) <= 1e-12 for a, b in zip(got, want))
    rows = sums.clone()
    _, tangent = torch.func.jvp(lambda r: fusedlse_cuda.broadcast_hw(r, 3, 2, torch.float64), (rows,), (sums,))
    assert torch.equal(tangent, sums[:, :, None, None].expand(2, 3, 3, 2))


# tap_sums and its adjoint broadcast_taps, the padded forward's building blocks: under forward mode and torch.func
# they run as torch ops (the compiled ops' formulas are reverse-mode only: forward mode had dropped their tangent,
# and jvp had given a wrong one, with no error).
TAP_SETTINGS = [dict(padding=1), dict(stride=2, padding=(2, 1), output_padding=1, dilation=(1, 2)), {}]


@pytest.mark.parametrize("settings", TAP_SETTINGS, ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_func_on_the_tap_blocks(device, settings):
    from torch.autograd import forward_ad

    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 5, 4, generator=g, dtype=torch.float64).to(device)
    tangent = torch.randn(2, 3, 5, 4, generator=g, dtype=torch.float64).to(device)
    taps = lambda t: fusedlse_cuda.tap_sums(t, (3, 2), **settings)  # noqa: E731
    spread = lambda t: fusedlse_cuda.broadcast_taps(t, 5, 4, torch.float64, **settings)  # noqa: E731
    # Both are linear: a tangent's image is the op applied to the tangent (the op itself, outside any transform).
    primal, jvp = torch.func.jvp(taps, (x,), (tangent,))
    assert rel_err(primal, taps(x)) <= 1e-14 and rel_err(jvp, taps(tangent)) <= 1e-14 and jvp.abs().max() > 0
    with forward_ad.dual_level():
        dual_tangent = forward_ad.unpack_dual(taps(forward_ad.make_dual(x, tangent))).tangent
    assert dual_tangent is not None and rel_err(dual_tangent, taps(tangent)) <= 1e-14
    assert rel_err(torch.func.vmap(taps)(torch.stack([x, tangent])), torch.stack([taps(x), taps(tangent)])) <= 1e-14
    sums = taps(x)
    _, spread_jvp = torch.func.jvp(spread, (sums,), (taps(tangent),))
    assert rel_err(spread_jvp, spread(taps(tangent))) <= 1e-14
    # and adjoint to each other under jacfwd as they are outside it
    assert rel_err(torch.func.jacfwd(spread)(sums).flatten(0, 3).flatten(1),
                   torch.func.jacrev(taps)(x).flatten(0, 3).flatten(1).T) <= 1e-14


@pytest.mark.parametrize("bias_shape", [(5, 1, 1), (5,)], ids=str)
@pytest.mark.parametrize("settings", [{}, dict(padding=1), dict(padding=(0, 2), stride=2, groups=5)], ids=str)
def test_model_new_under_jvp(settings, bias_shape):
    torch.manual_seed(2)
    model = reference.Model(5, 5, 3, bias_shape, **settings).double()
    new = fusedlse_cuda.ModelNew.from_model(model)
    x = torch.randn(2, 5, 6, 6, dtype=torch.float64)
    t = torch.randn_like(x)
    assert rel_err(torch.func.jvp(new, (x,), (t,))[1], torch.func.jvp(model, (x,), (t,))[1]) <= 1e-10


# --- 6. Settings parsed as nn.ConvTranspose2d parses them -----------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
def test_numpy_and_other_index_integers_are_settings(device):
    problem = make_problem(2, 3, 5, 4, 6, 3, 2, device=device)
    for stride in (np.int64(2), (np.int32(2), 1), torch.tensor(2), [2, np.int16(1)], torch.tensor([2, 1])):
        out = fusedlse_cuda.forward(*problem, stride=stride, dilation=np.int64(1), groups=np.int64(1))
        check_truth(out, *problem, stride=tuple(int(v) for v in shape.pair("stride", stride)))
    for ones in (torch.tensor([1, 1]), [1, 1], (np.int64(1), 1), True):  # the default, spelled otherwise
        assert torch.equal(fusedlse_cuda.forward(*problem, stride=ones, dilation=ones), fusedlse_cuda.forward(*problem))
    model = fusedlse_cuda.ModelNew(3, 6, np.int64(3), (6, 1, 1), stride=np.int64(2), output_padding=np.int64(1))
    assert model.to(device)(problem[0]).shape == (2, 1)


@pytest.mark.parametrize("value, message", [(1.5, r"stride must be an int or a pair of ints, got 1.5 \(float\)"),
                                            (2.0, r"stride must be an int or a pair of ints, got 2.0 \(float\)"),
                                            (1.0, r"stride must be an int or a pair of ints, got 1.0 \(float\)"),
                                            ((1.0, 1), r"stride must be an int or a pair of ints, got 1.0 \(float\)"),
                                            ((2, 1.0), r"stride must be an int or a pair of ints, got 1.0 \(float\)"),
                                            (np.float32(2), r"stride must be an int or a pair of ints, got "),
                                            ("2", r"stride must be an int or a pair of ints, got '2' \(str\)"),
                                            ((1, 2, 3), r"stride must be an int or a pair \(height, width\)")])
def test_non_integer_settings_are_refused(value, message):
    problem = make_problem(2, 3, 5, 4, 6, 3, 2)
    with pytest.raises((TypeError, ValueError), match=message):
        fusedlse_cuda.forward(*problem, stride=value)
    with pytest.raises((TypeError, ValueError), match=message):
        fusedlse_cuda.ModelNew(3, 6, 3, (6, 1, 1), stride=value)


@pytest.mark.parametrize("value", [(1, 1), 1.0, [1]], ids=str)
def test_groups_is_one_int(value):
    problem = make_problem(2, 3, 5, 4, 6, 3, 2)
    message = rf"groups must be an int, got {re.escape(repr(value))} \({type(value).__name__}\)"
    with pytest.raises(TypeError, match=message):
        fusedlse_cuda.forward(*problem, groups=value)
    with pytest.raises(TypeError, match=message):
        fusedlse_cuda.ModelNew(3, 6, 3, (6, 1, 1), groups=value)


@pytest.mark.parametrize("device", DEVICES)
def test_output_sizes_that_overflow_are_refused(device):
    x, weight, conv_bias, bias = make_problem(2, 3, 5, 4, 6, 3, 2, device=device)
    for stride in ([2**40, 2**40], [2**63 - 1, 1], [1, 2**62]):
        with pytest.raises(RuntimeError, match=r"the output's .* overflows int64; use a smaller stride or dilation"):
            torch.ops.fusedlse.forward(x, weight, conv_bias, bias, stride)
        with pytest.raises(RuntimeError, match=r"overflows int64"):
            torch.ops.fusedlse.check_forward(x, weight, conv_bias, bias, stride)
        with pytest.raises(ValueError, match=r"overflows int64"):
            shape.output_size(5, 4, 3, 2, stride, (0, 0), (1, 1))
    with pytest.raises(RuntimeError, match=r"overflows int64"):
        torch.ops.fusedlse.forward(x, weight, conv_bias, bias, [1, 1], [0, 0], [0, 0], [2**62, 1])
    with pytest.raises(ValueError, match=r"stride must fit in 64 bits, got 9223372036854775808"):
        fusedlse_cuda.forward(x, weight, conv_bias, bias, stride=2**63)
    # Large but representable: the exact answer, with no transposed convolution allocated.
    out = fusedlse_cuda.forward(x, weight, conv_bias, bias, stride=(2**20, 2**21))
    area = torch.ops.fusedlse.check_forward(x, weight, conv_bias, bias, [2**20, 2**21])
    assert area == (4 * 2**20 + 3) * (3 * 2**21 + 2)
    sums = x.double().sum((2, 3)).cpu()
    logits = sums @ weight.double().sum((2, 3)).cpu() / area + conv_bias.double().cpu() + bias.double().flatten().cpu()
    assert rel_err(out, 10 * torch.logsumexp(logits, 1, keepdim=True)) <= TOLERANCE[torch.float32]


def test_python_output_size_is_the_cpp_one_and_nn_convtranspose2d_one():
    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w, kh, kw = (int(v) for v in rng.integers(1, 9, 4))
        stride, dilation = [int(v) for v in rng.integers(1, 5, 2)], [int(v) for v in rng.integers(1, 4, 2)]
        output_padding = [int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation)]
        x, weight, conv_bias, bias = make_problem(1, 2, h, w, 3, kh, kw)
        area = torch.ops.fusedlse.check_forward(x, weight, conv_bias, bias, stride, [0, 0], output_padding, dilation)
        out_h, out_w = shape.output_size(h, w, kh, kw, stride, output_padding, dilation)
        conv = torch.nn.functional.conv_transpose2d(x, weight, stride=stride, output_padding=output_padding,
                                                    dilation=dilation)
        assert (out_h, out_w) == tuple(conv.shape[2:]) and area == out_h * out_w


# --- 7. Devices --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("moved", ["weight", "bias", "conv_bias"])
def test_cpu_x_with_a_meta_argument(moved):
    args = dict(zip(("x", "weight", "conv_bias", "bias"), make_problem(2, 3, 5, 5, 4, 3, 3)))
    args[moved] = args[moved].to("meta")
    with pytest.raises(RuntimeError, match=rf"{moved} is on meta but x is on cpu; move all arguments to one device"):
        fusedlse_cuda.forward(*args.values())
    with pytest.raises(RuntimeError, match=rf"{moved} is on meta but x is on cpu"):
        torch.ops.fusedlse.forward(*args.values())


def test_meta_x_with_cpu_arguments():
    x, weight, conv_bias, bias = make_problem(2, 3, 5, 5, 4, 3, 3)
    with pytest.raises(RuntimeError, match=r"weight is on cpu but x is on meta"):
        fusedlse_cuda.forward(x.to("meta"), weight, conv_bias, bias)
    with pytest.raises(RuntimeError, match=r"weight_sum is on meta but sums is on cpu"):
        fusedlse_cuda.gemm_lse(torch.randn(2, 3), torch.randn(3, 4, device="meta"), torch.randn(4), 1.0)


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
@pytest.mark.parametrize("moved", ["weight", "bias", "conv_bias"])
def test_cuda_x_with_a_meta_argument(moved):
    args = dict(zip(("x", "weight", "conv_bias", "bias"), make_problem(2, 3, 5, 5, 4, 3, 3, device="cuda")))
    args[moved] = args[moved].to("meta")
    with pytest.raises(RuntimeError, match=rf"{moved} is on meta but x is on cuda:0"):
        fusedlse_cuda.forward(*args.values())
    torch.cuda.synchronize()


@pytest.mark.parametrize("bias_shape", [(6, 1, 1), (6,)], ids=str)
def test_model_new_on_meta_like_the_reference(bias_shape):
    torch.manual_seed(0)
    model = reference.Model(3, 6, 3, bias_shape).to("meta")
    new = fusedlse_cuda.ModelNew(3, 6, 3, bias_shape).to("meta")
    x = torch.empty(2, 3, 8, 8, device="meta")
    out, expected = new(x), model(x)
    assert out.device.type == "meta" and out.shape == expected.shape and out.dtype == expected.dtype


# --- 8. Memory ---------------------------------------------------------------------------------------------------

def peak_extra_bytes(fn):
    """Peak device memory fn takes beyond what was allocated before it (its outputs included)."""
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    result = fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before, result


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
@pytest.mark.parametrize("batch, c_in, side, c_out", [(64, 1024, 2, 16384),  # wide units suffice
                                                       (2048, 1024, 1, 16384)],  # several launches
                         ids=["wide_units", "batch_ranges"])
@pytest.mark.usefixtures("fused_only")
def test_workspace_is_a_small_multiple_of_the_inputs(batch, c_in, side, c_out):
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(batch, c_in, side, side, device="cuda", generator=g) + 1
    weight = torch.randn(c_in, c_out, 1, 1, device="cuda", generator=g) / 30
    conv_bias, bias = torch.randn(c_out, device="cuda", generator=g), torch.randn(c_out, 1, 1, device="cuda",
                                                                                  generator=g)
    input_bytes = sum(t.nbytes for t in (x, weight, conv_bias, bias))
    extra, out = peak_extra_bytes(lambda: fusedlse_cuda.forward(x, weight, conv_bias, bias))
    assert extra <= max(3 * input_bytes, 80 << 20), (extra, input_bytes)
    logits = x.double().sum((2, 3)) @ weight.double().sum((2, 3)) / (side * side) + conv_bias.double() \
        + bias.double().flatten()
    assert rel_err(out, 10 * torch.logsumexp(logits, 1, keepdim=True)) <= TOLERANCE[torch.float32]
    sums, weight_sum, total_bias = x.sum((2, 3)), weight.sum((2, 3)), conv_bias + bias.flatten()
    extra, out = peak_extra_bytes(lambda: fusedlse_cuda.gemm_lse(sums, weight_sum, total_bias, 1 / (side * side)))
    assert extra <= max(3 * sum(t.nbytes for t in (sums, weight_sum, total_bias)), 80 << 20)
    assert rel_err(out, 10 * torch.logsumexp(logits, 1, keepdim=True)) <= TOLERANCE[torch.float32]


def driver():
    """The CUDA driver API, for streams created and destroyed outside torch's stream pool."""
    lib = ctypes.CDLL("libcuda.so.1")
    lib.cuStreamCreate.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_uint]
    lib.cuStreamDestroy_v2.argtypes = [ctypes.c_void_p]
    return lib


def new_stream(lib):
    handle = ctypes.c_void_p()
    assert lib.cuStreamCreate(ctypes.byref(handle), 1) == 0  # CU_STREAM_NON_BLOCKING
    return handle, torch.cuda.ExternalStream(handle.value)


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
def test_short_lived_streams_leave_memory_flat():
    problem = make_problem(*TICKETED, device="cuda")
    truth = reference.truth(*problem)
    lib = driver()
    fusedlse_cuda.forward(*problem)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    streams = [new_stream(lib) for _ in range(100)]  # alive together: 100 distinct handles
    outs = []
    for _, stream in streams:
        with torch.cuda.stream(stream):
            for i in range(100):
                out = fusedlse_cuda.forward(*problem)
                if i == 99:
                    outs.append(out)
    torch.cuda.synchronize()
    for handle, _ in streams:
        assert lib.cuStreamDestroy_v2(handle) == 0
    for out in outs:
        assert rel_err(out, truth) <= TOLERANCE[torch.float32]
    del outs, out
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() == before


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
def test_a_new_stream_does_not_wait_for_the_legacy_default_stream():
    problem = make_problem(*TICKETED, device="cuda")
    fusedlse_cuda.forward(*problem)  # the kernels are loaded
    lib = driver()
    handle, stream = new_stream(lib)
    try:
        with torch.cuda.stream(stream):
            # The caching allocator gets blocks for the new stream now (its large and small pools), so that no
            # device allocation, whose behaviour is the driver's, happens inside the call below.
            for size in (64 << 20, 512 << 10):
                torch.empty(size, dtype=torch.uint8, device="cuda")
        torch.cuda.synchronize()
        done = torch.cuda.Event()
        default = torch.cuda.default_stream()
        with torch.cuda.stream(default):
            torch.cuda._sleep(4_000_000_000)  # about two seconds of a busy legacy default stream
        with torch.cuda.stream(stream):
            out = fusedlse_cuda.forward(*problem)
            done.record(stream)
        done.synchronize()
        assert not default.query(), "the call on the new stream waited for the legacy default stream"
        torch.cuda.synchronize()
        assert rel_err(out, reference.truth(*problem)) <= TOLERANCE[torch.float32]
    finally:
        torch.cuda.synchronize()
        lib.cuStreamDestroy_v2(handle)


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
def test_threads_on_their_own_streams():
    problems = [make_problem(*TICKETED, device="cuda", seed=s) for s in range(4)]
    truths = [reference.truth(*p) for p in problems]
    errors = []

    def work(i):
        stream = torch.cuda.Stream()
        with torch.cuda.stream(stream):
            outs = [fusedlse_cuda.forward(*problems[i]) for _ in range(50)]
        stream.synchronize()
        errors.extend(rel_err(out, truths[i]) for out in outs)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 200 and max(errors) <= TOLERANCE[torch.float32]


# --- 9. The eager forward's short way into the dispatcher (csrc/python_module.cpp) ------------------------------------

class TensorLike(torch.Tensor):
    """A subclass that records the functions its __torch_function__ sees."""
    seen = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        cls.seen.append(func)
        return super().__torch_function__(func, types, args, kwargs or {})


class FunctionRecorder(torch.overrides.TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.seen.append(func)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("device", DEVICES)
def test_the_short_way_is_the_op_below_autograd(device):
    x, weight, conv_bias, bias = make_problem(3, 4, 6, 5, 7, 3, 3, device=device)
    want = torch.ops.fusedlse.forward(x, weight, conv_bias, bias)[0]
    for settings in ({}, dict(stride=(1, 1), padding=(0, 0), output_padding=(0, 0), dilation=(1, 1), groups=1)):
        assert torch.equal(fusedlse_cuda.forward(x, weight, conv_bias, bias, **settings), want)
    out = fusedlse_cuda._C.forward_no_grad(x, weight, None, bias)
    assert torch.equal(out, torch.ops.fusedlse.forward(x, weight, None, bias)[0]) and not out.requires_grad
    parameter = torch.nn.Parameter(weight.clone())
    with torch.no_grad():  # a Parameter is a plain tensor to the short way; without grad mode it needs no graph
        assert torch.equal(fusedlse_cuda._C.forward_no_grad(x, parameter, conv_bias, bias), want)
    with pytest.raises(TypeError, match=r"forward_no_grad expects 4 arguments \(x, weight, conv_bias, bias\) or 9 "
                                        r"\(those, stride, padding, output_padding, dilation, groups\), got 2"):
        fusedlse_cuda._C.forward_no_grad(x, weight)
    with pytest.raises(RuntimeError, match=r"weight must be 4-D"):  # the op's own checks, as the op raises them
        fusedlse_cuda._C.forward_no_grad(x, weight[0], conv_bias, bias)


@pytest.mark.parametrize("device", DEVICES)
def test_the_short_way_takes_settings_of_python_ints(device):
    x, weight, conv_bias, bias = make_problem(3, 4, 6, 5, 6, 3, 3, device=device)
    short = fusedlse_cuda._C.forward_no_grad
    grouped = weight[:, :3].contiguous()  # [C_in, C_out / 2, kH, kW] for groups 2
    for w, settings in ((weight, dict(stride=2, padding=1, output_padding=1, dilation=(1, 2), groups=1)),
                        (grouped, dict(stride=[1, 2], padding=(2, 1), output_padding=0, dilation=1, groups=2))):
        schema = {k: v if k == "groups" else shape.pair(k, v) for k, v in settings.items()}
        want = torch.ops.fusedlse.forward(x, w, conv_bias, bias, **schema)[0]
        out = short(x, w, conv_bias, bias, *settings.values())
        assert torch.equal(out, want) and not out.requires_grad
        assert torch.equal(fusedlse_cuda.forward(x, w, conv_bias, bias, **settings), want)
    # What the Python op parses itself (numpy ints, bools, floats, other lengths, beyond int64) is not taken.
    plain = dict(stride=1, padding=1, output_padding=0, dilation=1, groups=1)
    want = torch.ops.fusedlse.forward(x, weight, conv_bias, bias, padding=[1, 1])[0]
    for name, value in (("stride", np.int64(1)), ("padding", True), ("dilation", (1, np.int64(1))),
                        ("groups", np.int64(1))):
        assert short(x, weight, conv_bias, bias, *{**plain, name: value}.values()) is NotImplemented
        assert torch.equal(fusedlse_cuda.forward(x, weight, conv_bias, bias, **{**plain, name: value}), want)
    for name, value in (("padding", 1.0), ("stride", (1, 1, 1)), ("output_padding", 2**63), ("groups", (1, 1))):
        assert short(x, weight, conv_bias, bias, *{**plain, name: value}.values()) is NotImplemented
        with pytest.raises((TypeError, ValueError)):
            fusedlse_cuda.forward(x, weight, conv_bias, bias, **{**plain, name: value})
    # Plain ints the op refuses: its own error, as through the Python op.
    with pytest.raises(RuntimeError, match=r"padding must be non-negative, got \[-1, -1\]"):
        short(x, weight, conv_bias, bias, 1, -1, 0, 1, 1)


@pytest.mark.parametrize("device", DEVICES)
def test_calls_the_short_way_would_change_take_the_op(device):
    x, weight, conv_bias, bias = make_problem(3, 4, 6, 5, 7, 3, 3, device=device)
    want = torch.ops.fusedlse.forward(x, weight, conv_bias, bias)[0]
    short = fusedlse_cuda._C.forward_no_grad
    parameter = torch.nn.Parameter(weight.clone())
    assert short(x, parameter, conv_bias, bias) is NotImplemented  # it needs a gradient
    out = fusedlse_cuda.forward(x, parameter, conv_bias, bias)
    assert out.requires_grad and torch.equal(out.detach(), want)
    out.sum().backward()
    assert parameter.grad is not None and parameter.grad.abs().sum() > 0
    TensorLike.seen.clear()
    subclassed = x.as_subclass(TensorLike)
    assert short(subclassed, weight, conv_bias, bias) is NotImplemented
    out = fusedlse_cuda.forward(subclassed, weight, conv_bias, bias)
    assert torch.ops.fusedlse.forward.default in TensorLike.seen and torch.equal(out.as_subclass(torch.Tensor), want)
    with FunctionRecorder() as recorder:
        assert short(x, weight, conv_bias, bias) is NotImplemented
        out = fusedlse_cuda.forward(x, weight, conv_bias, bias)
    assert torch.ops.fusedlse.forward.default in recorder.seen and torch.equal(out, want)
