"""Every strategy and reader of the CUDA forward, forced one at a time (fusedlse_cuda.planning.forced_plan): each
must match the float64 model on every shape, dtype and layout, whatever the planner would choose there."""
import contextlib

import pytest
import torch

import fusedlse_cuda
from fusedlse_cuda import reference
from fusedlse_cuda.planning import (WALKS, forced_plan, forced_plane_lanes_persistent, forced_plane_lanes_pieces,
                                    forced_walk)
from helpers import (DTYPES, HAS_CUDA, LAYOUTS, SHAPES, STRIDED_VIEWS, TOLERANCE, lay_out, make_problem,
                     narrow_lse_applies, narrow_lse_splits, poison_allocator, rel_err, rows_lse_applies, strided_view)

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")]

# (strategy, reader, epilogue): every path forward() can take. "planes" on a layout it does not walk copies x first.
PLANS = {"fused": ("fused", None, None), "split_planes": ("split", "planes", "tiled_lse"),
         "split_lanes": ("split", "plane_lanes", "tiled_lse"), "split_torch": ("split", "torch_sum", "tiled_lse"),
         "split_cublas": ("split", "torch_sum", "cublas_lse"), "split_rows": ("split", "channel_rows", "tiled_lse"),
         "split_rows_lse": ("split", None, "rows_lse"), "split_narrow_lse": ("split", None, "narrow_lse"),
         "split_gemv_lse": ("split", None, "gemv_lse")}


@pytest.mark.parametrize("plan", list(PLANS))
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", list(SHAPES), ids=list(SHAPES))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_plan_matches_float64_model(dtype, shape, layout, plan):
    x, weight, conv_bias, bias = make_problem(*SHAPES[shape], dtype=dtype, device="cuda", layout=layout)
    poison_allocator("cuda")
    with forced_plan(*PLANS[plan]):
        out = fusedlse_cuda.forward(x, weight, conv_bias, bias)
    assert out.shape == (x.shape[0], 1) and out.dtype == dtype
    assert torch.isfinite(out).all()
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias)) <= TOLERANCE[dtype]


# Every path over views of any strides (helpers.STRIDED_VIEWS): planes of 35 elements in units of several batches, and
# of 1200 cut into pieces; readers that do not walk a view's strides copy it first.
@pytest.mark.parametrize("plan", list(PLANS))
@pytest.mark.parametrize("view", STRIDED_VIEWS)
@pytest.mark.parametrize("shape", [(37, 6, 5, 7, 9, 3, 3), (5, 6, 30, 40, 9, 3, 3)], ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_every_plan_reads_views_of_any_strides(dtype, shape, view, plan):
    x, weight, conv_bias, bias = make_problem(*shape, dtype=dtype, device="cuda")
    _check_forced(PLANS[plan], strided_view(x, view), weight, conv_bias, bias)


@pytest.mark.parametrize("walk", WALKS)
@pytest.mark.parametrize("view", STRIDED_VIEWS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_tiny_plane_walks_read_views_of_any_strides(dtype, view, walk):
    """Tiny planes by the plane-lanes reader with each walk forced: the run walks take an expanded batch's channels,
    which follow each other (runs 0 elements apart); other views go to the lanes."""
    x, weight, conv_bias, bias = make_problem(700, 9, 2, 3, 5, 1, 2, dtype=dtype, device="cuda")
    _check_forced_sums("plane_lanes", strided_view(x, view), weight, conv_bias, bias, walk=walk)


# Grouped problems (B, C_in, H, W, C_out, kH, kW, groups): small planes; self-contained tiles; several epilogue units
# per batch (the fused launch's fold blocks), 4 groups; a 1 x 1 kernel, whose ungrouped float32 weight would be its
# own W.sum.
GROUPED_SHAPES = {"small": (2, 4, 8, 8, 6, 3, 3, 2), "self_contained": (601, 6, 8, 8, 9, 3, 3, 3),
                  "wide_cin": (2, 300, 5, 6, 40, 3, 3, 4), "one_by_one": (1200, 2, 4, 4, 300, 1, 1, 2)}


@pytest.mark.parametrize("weight_layout", ["contiguous", "strided"])
@pytest.mark.parametrize("plan", list(PLANS))
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("shape", list(GROUPED_SHAPES), ids=list(GROUPED_SHAPES))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_plan_sums_the_grouped_weight_in_place(dtype, shape, layout, plan, weight_layout):
    """Every path sums a grouped weight [C_in, C_out / groups, kH, kW] where it lies, zero between groups: the fused
    launch's fold blocks and self-contained tiles, the W.sum launch beside the plane-lanes reader or after the others
    (the split readers fold only ungrouped weights), from a contiguous weight or a strided one (a slice of a wider
    one)."""
    *sizes, groups = GROUPED_SHAPES[shape]
    x, dense_weight, conv_bias, bias = make_problem(*sizes, dtype=dtype, device="cuda", layout=layout)
    weight = dense_weight[:, : sizes[4] // groups]
    if weight_layout == "contiguous":
        weight = weight.contiguous()
    poison_allocator("cuda")
    with forced_plan(*PLANS[plan]):
        out = fusedlse_cuda.forward(x, weight, conv_bias, bias, groups=groups)
        again = fusedlse_cuda.forward(x, weight, conv_bias, bias, groups=groups)
    assert out.shape == (x.shape[0], 1) and out.dtype == dtype
    assert torch.equal(out, again)
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias, groups=groups)) <= TOLERANCE[dtype]


@pytest.mark.parametrize("plan", ["split_lanes", "split_torch", "split_planes", "split_cublas"])
@pytest.mark.parametrize("bias_shape", [(7, 1, 1), (1, 7, 1, 1), (), (1, 1, 1)], ids=str)
def test_split_without_conv_bias_and_every_bias_shape(bias_shape, plan):
    x, weight, _, bias = make_problem(3, 4, 2, 3, 7, 3, 3, device="cuda")
    bias = torch.randn(bias_shape, device="cuda")
    with forced_plan(*PLANS[plan]):
        out = fusedlse_cuda.forward(x, weight, None, bias)
    assert rel_err(out, reference.truth(x, weight, None, bias)) <= TOLERANCE[torch.float32]


def _captured_forward(x, weight, conv_bias, bias):
    """A CUDA graph of the forward on these tensors, captured after a warm-up call on a side stream (as torch's docs
    ask), and the output tensor its replays write."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fusedlse_cuda.forward(x, weight, conv_bias, bias)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = fusedlse_cuda.forward(x, weight, conv_bias, bias)
    return graph, captured


@pytest.mark.parametrize("plan", ["split_lanes", "split_planes", "split_cublas"])
@pytest.mark.parametrize("batch", [300, 20], ids=["one_column_run", "column_runs"])
def test_split_is_bitwise_reproducible_and_graph_capturable(plan, batch):
    x, weight, conv_bias, bias = make_problem(batch, 20, 3, 4, 500, 3, 3, device="cuda")
    with forced_plan(*PLANS[plan]):
        first = fusedlse_cuda.forward(x, weight, conv_bias, bias)
        for _ in range(3):
            assert torch.equal(fusedlse_cuda.forward(x, weight, conv_bias, bias), first)
        graph, captured = _captured_forward(x, weight, conv_bias, bias)
    x.mul_(-1.5).add_(0.25)
    graph.replay()
    torch.cuda.synchronize()
    assert rel_err(captured, reference.truth(x, weight, conv_bias, bias)) <= TOLERANCE[torch.float32]


# Many tiny planes; few planes, cut into pieces (two reader passes); a wide C_out (the tiled epilogue's column runs
# and their merge).
@pytest.mark.parametrize("shape", [(3000, 40, 2, 3, 9, 3, 3), (2, 3, 700, 900, 40, 3, 3), (64, 20, 5, 7, 3000, 2, 2)],
                         ids=str)
@pytest.mark.parametrize("plan", ["split_lanes", "split_cublas"])
def test_split_kernels_see_what_the_kernel_before_them_wrote(plan, shape):
    """The split strategy's kernels may start before the kernel ahead of them in the stream ends (programmatic
    dependent launch on sm_90): each must still see what that kernel wrote. x is rewritten by the kernel just
    before each call, and each output is copied by the kernel just after it, with no synchronization between."""
    x, weight, conv_bias, bias = make_problem(*shape, device="cuda")
    seen, outs = [], []
    with forced_plan(*PLANS[plan]):
        for step in range(6):
            seen.append(x.clone())
            x.mul_(-1.25).add_(0.5 + step)  # the kernel right before the reader writes x
            outs.append(fusedlse_cuda.forward(x, weight, conv_bias, bias).clone())
    torch.cuda.synchronize()
    for step, out in enumerate(outs):
        expected_x = seen[step].mul(-1.25).add(0.5 + step)
        assert rel_err(out, reference.truth(expected_x, weight, conv_bias, bias)) <= TOLERANCE[torch.float32]


# (B, C_in, C_out): one column of a chunk on one lane; two lanes of one chunk each; two lanes over three chunks (the
# last part-masked); four lanes of two chunks (20000 rows fill a quarter of the resident threads at four lanes); one
# lane of eight chunks over more rows than fit on the device at once (a second trip); 32 lanes of 13 chunks; C_in 16
# at the shared-memory limit in float32 (C_out 600; float64 runs tiled); C_out 6072 on one channel and 4008 on two
# (float32's limits; float64's are 3000 and 1960), each lane walking many chunks; C_in 17, C_out 601 on 16 channels
# and 6073 on one, one past each limit (the tiled epilogue runs instead).
ROWS_LSE_PROBLEMS = [(5, 1, 1), (1000, 2, 16), (300, 3, 17), (20000, 4, 64), (300001, 4, 64), (3, 16, 100),
                     (50, 16, 600), (20, 1, 6072), (700, 2, 4008), (40, 17, 241), (30, 16, 601), (9, 1, 6073)]


# (B, C_in, C_out): C_out 1 to 32 on each of the narrow kernels' 4, 8, 16 and 32 columns; groups of 8 lanes (many
# rows: 20000 x 4 rows, part of a group's rows past B) and of 32 (few rows, 64 channels and more); channels fewer than
# a group's lanes (1, 5); a block's rows and more than fit on the device at once (300001 rows, a second trip); W.sum
# past the 48 KiB a block gets without opting in (700 channels x 32 columns: 90 KB); float32's limits of one channel
# range (C_out 4 on 6143 channels, 32 on 767: 96 KiB; float64's are 3071 and 383) and one past each (6144 and 768
# channels: two ranges); C_out 33, where the tiled epilogue runs instead.
NARROW_LSE_PROBLEMS = [(5, 1, 1), (7, 5, 4), (20001, 40, 5), (300001, 12, 2), (90, 64, 8), (33, 300, 16), (3, 1000, 9),
                       (40, 700, 32), (11, 6143, 4), (6, 767, 32), (5, 6144, 4), (5, 768, 32), (50, 40, 33)]


# The epilogues that apply to part of the problems only, each with its problems and where it applies.
PARTIAL_EPILOGUES = {"rows_lse": (ROWS_LSE_PROBLEMS, rows_lse_applies),
                     "narrow_lse": (NARROW_LSE_PROBLEMS, narrow_lse_applies)}


@pytest.mark.parametrize("epilogue,problem", [(epilogue, problem) for epilogue, (problems, _) in
                                              PARTIAL_EPILOGUES.items() for problem in problems], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_partial_epilogue_matches_float64_model(dtype, epilogue, problem):
    """The rows or the narrow epilogue (forced) against the model, bitwise the same on a second run; explain() says
    where it runs and where the tiled one stands in."""
    batch, c_in, c_out = problem
    expected = epilogue if PARTIAL_EPILOGUES[epilogue][1](c_in, c_out, dtype) else "tiled_lse"
    _check_forced_epilogue(("split", None, epilogue), expected, batch, c_in, c_out, dtype)


# (B, C_in, C_out): the narrow epilogue over channel ranges (split-K, where W.sum does not fit a block's 96 KiB): two
# ranges of 1024 channels at 16 columns on rows past a group's ([8192, 2048] -> 16 of docs/limits.md section 72, cut
# down); a last range shorter than the others (3001 channels at 32 columns: 4 ranges of 751 in float32, 8 of 376 in
# float64); many ranges of 4 columns (40000 channels); one row; rows past a block's and a second trip.
NARROW_SPLIT_PROBLEMS = [(301, 2048, 16), (70, 3001, 32), (9, 40000, 3), (1, 5000, 8), (20001, 1600, 13)]


@pytest.mark.parametrize("problem", NARROW_SPLIT_PROBLEMS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_narrow_split_k_matches_float64_model(dtype, problem):
    """The narrow epilogue (forced) over channel ranges: explain() gives the ranges, and the forward is the model's,
    with and without conv_bias, bitwise the same on a second run."""
    batch, c_in, c_out = problem
    x, weight, _, _ = make_problem(batch, c_in, 2, 1, c_out, 1, 2, dtype=dtype, device="cuda")
    with forced_plan("split", None, "narrow_lse"):
        assert fusedlse_cuda.explain(x, weight)["narrow_k_splits"] == narrow_lse_splits(c_in, c_out, dtype) > 1
    _check_forced_epilogue(("split", None, "narrow_lse"), "narrow_lse", batch, c_in, c_out, dtype)


# The logsumexp after cuBLAS's GEMM (split.cu): a group of lanes per row, or a block per row where rows are few and
# long (C_out >= 512 on few rows); the biases' sum staged in shared memory up to kBiasLseMaxStagedBytes (C_out 4096
# in float32, 2048 in float64: the pairs below are each limit and one past it), read from global memory past it.
CUBLAS_LSE_PROBLEMS = [(5000, 3, 1), (3000, 2, 113), (40, 3, 700), (2200, 2, 2048), (2200, 2, 2049), (30, 2, 4096),
                       (2200, 1, 4097), (20, 1, 5000)]


@pytest.mark.parametrize("problem", CUBLAS_LSE_PROBLEMS, ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
def test_cublas_epilogue_matches_float64_model(dtype, problem):
    """cuBLAS's epilogue (forced) against the model, with and without conv_bias, bitwise the same on a second run."""
    batch, c_in, c_out = problem
    _check_forced_epilogue(("split", "plane_lanes", "cublas_lse"), "cublas_lse", batch, c_in, c_out, dtype)


# (B, C_in, C_out): GEMMs of fewer of cuBLAS's output tiles than multiprocessors, whose channels cuBLAS's epilogue
# slices (plan::cublas_k_splits, split-K: a strided batched GEMM, the slices' partial logits added by bias_lse): r43's
# (3 slices), r32's (15: few rows of few columns), short_rows' (8), 300 rows of 100 columns (10), one batch of one
# column (3).
CUBLAS_SPLIT_K_PROBLEMS = [(2328, 657, 61), (15, 1125, 135), (256, 512, 256), (300, 640, 100), (1, 1473, 2)]


@pytest.mark.parametrize("problem", CUBLAS_SPLIT_K_PROBLEMS, ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
def test_cublas_split_k_matches_float64_model(dtype, problem):
    """cuBLAS's epilogue (forced) over channel slices: explain() gives the slices, and the forward is the model's, with
    and without conv_bias, bitwise the same on a second run."""
    batch, c_in, c_out = problem
    x, weight, _, _ = make_problem(batch, c_in, 2, 1, c_out, 1, 2, dtype=dtype, device="cuda")
    assert fusedlse_cuda.explain(x, weight)["cublas_k_splits"] > 1
    _check_forced_epilogue(("split", "plane_lanes", "cublas_lse"), "cublas_lse", batch, c_in, c_out, dtype)


def full_rate_bf16_tensor_cores():
    """A device whose tensor cores accumulate bfloat16 products in float32 at full rate: compute capability 8.0, 9.0
    or 10.0 (not the GeForce parts, sm_120 among them)."""
    return torch.cuda.get_device_capability() in ((8, 0), (9, 0), (10, 0))


# (B, C_in, C_out): GEMMs that cuBLAS's epilogue runs over bfloat16 pieces for 16-bit x (plan::bf16_pieces_apply) or
# not: r06's [512, 2048] x [2048, 1024]; 259 channels and 515 columns, padded to 264 and 520 in the pieces; 37
# channels in a GEMM of 156M multiply-adds (pieces); 255 channels in one of 33M, 24 channels in one of 403M (the
# factors as they are). C_out 512 and more: no channel slices (plan::cublas_k_splits).
BF16_PIECES_PROBLEMS = [(512, 2048, 1024), (300, 259, 515), (2048, 37, 2056), (256, 255, 512), (4096, 24, 4096)]


def bf16_pieces_expected(dtype, batch, c_in, c_out):
    """plan::bf16_pieces_apply's rule (tuning.h): 16-bit x; rows and C_out 256 or more; C_in too, or C_in 32 or more
    in a GEMM of 2^27 multiply-adds or more; a device of full-rate bfloat16 tensor cores."""
    sides = min(batch, c_out) >= 256 and (c_in >= 256 or (c_in >= 32 and batch * c_in * c_out >= 2**27))
    return dtype != torch.float32 and sides and full_rate_bf16_tensor_cores()


@pytest.mark.parametrize("problem", BF16_PIECES_PROBLEMS, ids=str)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
def test_cublas_epilogue_over_bf16_pieces_matches_float64_model(dtype, problem):
    """explain() says where cuBLAS's GEMM runs over bfloat16 pieces (bf16_pieces_expected), and the forward (forced)
    is the model's, with and without conv_bias, bitwise the same on a second run."""
    batch, c_in, c_out = problem
    x, weight, _, _ = make_problem(batch, c_in, 2, 1, c_out, 1, 2, dtype=dtype, device="cuda")
    pieces = bf16_pieces_expected(dtype, *problem)
    assert fusedlse_cuda.explain(x, weight)["cublas_factors"] == ("bf16_pieces" if pieces else "as_is")
    _check_forced_epilogue(("split", "plane_lanes", "cublas_lse"), "cublas_lse", batch, c_in, c_out, dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_cublas_epilogue_over_bf16_pieces_in_batch_ranges(dtype):
    """Logits of 8000 x 2000 float32 (64 MB) and the sums' pieces (12 MB) past the 64 MiB workspace floor: two batch
    ranges, W.sum's pieces written by the first alone."""
    x, weight, conv_bias, bias = make_problem(8000, 256, 1, 1, 2000, 1, 1, dtype=dtype, device="cuda")
    pieces = bf16_pieces_expected(dtype, 8000, 256, 2000)
    assert fusedlse_cuda.explain(x, weight)["cublas_factors"] == ("bf16_pieces" if pieces else "as_is")
    _check_forced(("split", "plane_lanes", "cublas_lse"), x, weight, conv_bias, bias)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_cublas_bf16_pieces_see_each_call_and_replay_in_a_graph(dtype):
    """The pieces' launches may start before the kernel ahead of them ends (programmatic dependent launch): each call
    sees x and the weight as the kernels just before it wrote them (the weight's pieces are cut again each call); a
    second call is bitwise the same; a captured graph replays on new values."""
    x, weight, conv_bias, bias = make_problem(300, 256, 2, 1, 512, 1, 2, dtype=dtype, device="cuda")
    seen, outs = [], []
    with forced_plan("split", "plane_lanes", "cublas_lse"):
        pieces = bf16_pieces_expected(dtype, 300, 256, 512)
        assert fusedlse_cuda.explain(x, weight)["cublas_factors"] == ("bf16_pieces" if pieces else "as_is")
        for step in range(4):
            seen.append((x.clone(), weight.clone()))
            x.mul_(-1.25).add_(0.5 + step)
            weight.mul_(-0.75)  # the kernel right before the forward
            outs.append(fusedlse_cuda.forward(x, weight, conv_bias, bias).clone())
        assert torch.equal(fusedlse_cuda.forward(x, weight, conv_bias, bias), outs[-1])
        graph, captured = _captured_forward(x, weight, conv_bias, bias)
    torch.cuda.synchronize()
    for step, ((x_before, weight_before), out) in enumerate(zip(seen, outs)):
        expected = (x_before.mul(-1.25).add(0.5 + step), weight_before.mul(-0.75))
        assert rel_err(out, reference.truth(*expected, conv_bias, bias)) <= TOLERANCE[dtype]
    x.mul_(-1.5).add_(0.25)
    weight.mul_(2)
    graph.replay()
    torch.cuda.synchronize()
    assert rel_err(captured, reference.truth(x, weight, conv_bias, bias)) <= TOLERANCE[dtype]


@pytest.mark.parametrize("epilogue", ["tiled_lse", "cublas_lse"])
def test_split_keeps_float32_accuracy_with_tf32_allowed(epilogue):
    """A GEMM-heavy problem: TF32 alone would be ~1e-3 off; cuBLAS's epilogue splits the factors (3xTF32) and then
    not its channels (its 88 output tiles would take 2 slices otherwise), the tiled one never uses TF32."""
    x, weight, conv_bias, bias = make_problem(256, 512, 1, 1, 700, 1, 1, device="cuda")
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        with forced_plan("split", "plane_lanes", epilogue):
            out = fusedlse_cuda.forward(x, weight, conv_bias, bias)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias)) <= TOLERANCE[torch.float32]


@pytest.mark.parametrize("epilogue", ["tiled_lse", "cublas_lse"])
@pytest.mark.parametrize("autocast_dtype", [torch.bfloat16, torch.float16], ids=str)
def test_split_ignores_autocast(autocast_dtype, epilogue):
    x, weight, conv_bias, bias = make_problem(256, 512, 1, 1, 700, 1, 1, device="cuda")
    with forced_plan("split", "torch_sum", epilogue), torch.autocast("cuda", dtype=autocast_dtype):
        out = fusedlse_cuda.forward(x, weight, conv_bias, bias)
    assert out.dtype == torch.float32
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias)) <= TOLERANCE[torch.float32]


@pytest.mark.parametrize("epilogue,workspace_bytes", [("cublas_lse", (64 << 20) + (1 << 20)), ("tiled_lse", 1 << 20)])
def test_split_workspace(epilogue, workspace_bytes):
    """Logits of 20000 x 1000 float32 (80 MB) exceed the 64 MiB workspace floor: cuBLAS's epilogue takes two batch
    ranges; the tiled one writes no logits at all (the sums and W.sum, 80 kB, and its column runs' partial states)."""
    x, weight, conv_bias, bias = make_problem(20000, 1, 1, 1, 1000, 1, 1, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    with forced_plan("split", "plane_lanes", epilogue):
        out = fusedlse_cuda.forward(x, weight, conv_bias, bias)
    torch.cuda.synchronize()
    assert torch.cuda.max_memory_allocated() - torch.cuda.memory_allocated() <= workspace_bytes
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias)) <= TOLERANCE[torch.float32]


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "sliced", "offset"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_sum_hw_of_tiny_planes_in_every_layout(dtype, layout):
    """The plane-lanes reader's, but for channels-last pixels of 9 channels under 64 bytes (all but float64), which
    torch's reduction reads faster (plan.cpp's kTinyLanesMinPixelBytes)."""
    x = make_problem(700, 9, 2, 3, 1, 1, 1, dtype=dtype, device="cuda", layout=layout)[0]
    weight = torch.empty(9, 1, 1, 1, dtype=dtype, device="cuda")
    torch_reads = layout == "channels_last" and dtype != torch.float64
    assert fusedlse_cuda.explain(x, weight)["split_reader"] == ("torch_sum" if torch_reads else "plane_lanes")
    assert rel_err(fusedlse_cuda.sum_hw(x), x.double().sum((2, 3))) <= TOLERANCE[dtype]


def _check_forced_sums(reader, x, weight, conv_bias, bias, walk=None):
    """The sums forward() saves for the backward, read by `reader` (forced: the split strategy, the tiled epilogue;
    and `walk` over tiny planes that follow each other, where given) on poisoned memory: within x's dtype's tolerance
    of float64 and bitwise the same on a second run; the output within that tolerance of the model."""
    poison_allocator("cuda")
    with forced_plan("split", reader, "tiled_lse"), forced_walk(walk) if walk else contextlib.nullcontext():
        out, sums = torch.ops.fusedlse.forward(x, weight, conv_bias, bias)
        again = torch.ops.fusedlse.forward(x, weight, conv_bias, bias)[1]
    assert rel_err(sums, x.double().sum((2, 3))) <= TOLERANCE[x.dtype]
    assert torch.equal(sums, again)
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias)) <= TOLERANCE[x.dtype]


def _channels_last(x, layout):
    """x's values channels-last: dense ("nhwc"), dense from one element past a 16-byte boundary ("offset_nhwc"), a
    slice of a wider channels-last tensor's channels ("channel_slice": pixels C + 3 elements apart, unaligned), every
    other batch of one twice as long ("batch_slice"), or dense with H and W swapped in memory ("transposed_hw":
    pixels still on one stride when H or W is 1, else torch's reduction)."""
    b, c, h, w = x.shape
    if layout == "nhwc":
        return x.contiguous(memory_format=torch.channels_last)
    if layout == "offset_nhwc":
        view = torch.empty(b * h * w * c + 1, dtype=x.dtype, device=x.device)[1:].view(b, h, w, c).permute(0, 3, 1, 2)
    elif layout == "channel_slice":
        view = torch.empty(b, h, w, c + 3, dtype=x.dtype, device=x.device).permute(0, 3, 1, 2)[:, 1:c + 1]
    elif layout == "batch_slice":
        view = torch.empty(2 * b, h, w, c, dtype=x.dtype, device=x.device).permute(0, 3, 1, 2)[::2]
    else:
        view = torch.empty(b, w, h, c, dtype=x.dtype, device=x.device).permute(0, 3, 2, 1)
    view.copy_(x)
    return view


# (B, C_in, H, W): channels 1 to 2049. Pixels that follow each other (nhwc, offset_nhwc, batch_slice, transposed_hw
# where H or W is 1) of 129 channels and more, 16 or 32 bits, take the vector walk where a batch holds 32 loads for
# each slot: periods of 17 to 1439 vectors, copies of the short ones (136 and 256 channels), slots past the threads
# (257 x 30 x 30 and 1439 channels), chunks whose ends cut vectors and periods (1439 x 40 x 45). Otherwise the scalar
# walk (also 257 x 9 x 11, 1439 x 5 x 9 and 2048 x 4 x 4: too few loads per slot): a thread per (pixel, channel) up
# to 256 channels, several channels per thread past that, 2048 the most, 2049 torch's reduction; one batch of many
# pixels (chunks, a second pass), many batches of few pixels, pixels on one row or column. Planes of up to 32 pixels
# whose pixels are whole aligned 16-byte vectors (C a multiple of 8: nhwc and batch_slice) take the pixel-vector
# walk: a pixel of one vector or 256 (2048 x 2 x 2), one pixel or 32, one batch or 600. float64 planes of 400 pixels
# and more of 272 to 2048 channels (pixels of whole 128-byte lines) take it in chunks (nhwc and batch_slice): one
# batch of 613 pixels or three, a last chunk shorter than the others (3 x 320 x 41 x 10); 686 channels (r23's) the
# scalar walk.
CHANNEL_ROWS_SHAPES = [(2, 3, 5, 7), (3, 18, 23, 3), (2, 64, 40, 50), (1, 256, 33, 17), (2, 257, 9, 11),
                       (2, 272, 20, 21), (1, 2048, 613, 1), (3, 320, 41, 10), (1, 686, 613, 1),
                       (2, 257, 30, 30), (3, 1439, 5, 9), (2, 1439, 40, 45), (1, 2048, 4, 4), (1, 2049, 2, 2),
                       (1, 4, 512, 512), (1, 136, 40, 40), (2, 129, 64, 64), (300, 5, 3, 3), (2, 40, 1, 301),
                       (2, 40, 301, 1), (600, 8, 2, 2), (3, 2048, 2, 2), (37, 24, 5, 5), (5, 16, 1, 32), (70, 8, 1, 1)]


@pytest.mark.parametrize("layout", ["nhwc", "offset_nhwc", "channel_slice", "batch_slice", "transposed_hw"])
@pytest.mark.parametrize("shape", CHANNEL_ROWS_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_channel_rows_reader_sums_every_channel(dtype, shape, layout):
    """The sums forward() saves for the backward, read by the channel-rows reader (forced) in channels-last layouts,
    against float64; bitwise the same on a second run; the output against the model."""
    x, weight, conv_bias, bias = make_problem(shape[0], shape[1], shape[2], shape[3], 3, 2, 1, dtype=dtype,
                                              device="cuda")
    _check_forced_sums("channel_rows", _channels_last(x, layout), weight, conv_bias, bias)


def _strided(x, layout):
    """x's values with W contiguous but rows padded ("rows"), W padded to a multiple of 16 bytes ("padded_w": every
    plane aligned, a vector tail), or W and H swapped in memory ("transposed": no unit stride in a plane)."""
    b, c, h, w = x.shape
    if layout == "rows":
        view = torch.empty(b, c, h + 1, w + 3, dtype=x.dtype, device=x.device)[:, :, 1:, 3:]
    elif layout == "padded_w":
        padded = -(-w * x.element_size() // 16) * 16 // x.element_size() + 16 // x.element_size()
        view = torch.empty(b, c, h, padded, dtype=x.dtype, device=x.device)[..., :w]
    else:
        view = torch.empty(b, c, w, h, dtype=x.dtype, device=x.device).transpose(2, 3)
    view.copy_(x)
    return view


# (B, C_in, H, W): every walk of the plane-lanes reader (strided rows, one row, 16-byte vectors with and without a
# tail, the tail longer than the lanes; planes of 2048 elements and more that start inside a vector, in the offset
# layout and where a plane's bytes are no multiple of 16 (3 x 300 x 299 in 16 bits): the inner-vector walk), lanes 1
# to 32 (more lanes than a row is wide included), planes cut into pieces (a second pass adds them; or, 2 to 8 pieces,
# the block that read them: (50, 20, 64, 130) and (100, 20, 16, 130) in the scalar walks, (50, 20, 64, 130) also
# 16-byte vectors), rows of one column. In the sliced, padded_w and rows layouts the planes of 12 elements or more
# take the masked-vector walk (gaps of 2 or 3 elements, planes starting anywhere in a vector, the last vector past
# the end of x's storage, large planes cut into pieces; a column of one element every 3 as rows of one, up to 256
# elements, the scalar walk past them: (2, 3, 300, 1)); planes of fewer elements the scalar walk. (500, 7, 3, 6) and
# (64, 69, 2, 3) are r26's and r58's planes of the sweep. (600, 1, 256, 256): planes of half a wave of blocks to one
# (on the H200 and the RTX 4090), a block each, its groups the plane's pieces (tuning.h, kBlockPerPlaneMinWave).
READER_SHAPES = [(700, 9, 2, 3), (5, 7, 3, 20), (3, 5, 7, 9), (2, 3, 50, 1), (2, 3, 300, 1), (4, 6, 20, 3),
                 (2, 3, 64, 64), (1, 2, 512, 512), (1, 1, 1, 131), (2, 3, 1, 135), (3, 2, 300, 299),
                 (1, 1, 2048, 2048), (500, 7, 3, 6), (64, 69, 2, 3), (63, 7, 2, 7), (90, 12, 13, 1),
                 (50, 20, 64, 130), (100, 20, 16, 130), (600, 1, 256, 256)]


def _plane_lanes_problem(b, c_in, height, width, dtype, layout):
    """(x, weight, conv_bias, bias) on the GPU, C_out 3 and a 1 x 1 kernel, x in `layout`: one of LAYOUTS, or a strided
    view (_strided's) of the contiguous x."""
    x, weight, conv_bias, bias = make_problem(b, c_in, height, width, 3, 1, 1, dtype=dtype, device="cuda",
                                              layout=layout if layout in LAYOUTS else "contiguous")
    return (x if layout in LAYOUTS else _strided(x, layout)), weight, conv_bias, bias


@pytest.mark.parametrize("layout", LAYOUTS + ["rows", "padded_w", "transposed"])
@pytest.mark.parametrize("shape", READER_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_plane_lanes_reader_sums_every_plane(dtype, shape, layout):
    """The sums forward() saves for the backward, read by the plane-lanes reader in every layout, against float64;
    bitwise the same on a second run."""
    if (shape[2] * shape[3] >= 2**22 or shape[0] * shape[1] * shape[2] * shape[3] >= 2**25) and layout not in (
            "contiguous", "rows"):
        pytest.skip("the largest planes and x in two layouts are enough")
    x, weight, conv_bias, bias = _plane_lanes_problem(*shape, dtype, layout)
    _check_forced_sums("plane_lanes", x, weight, conv_bias, bias)


# (B, C_in, H, W) whose plane-lanes launch asks for more blocks than any device here holds at once (items x lanes past
# 2048 threads x 144 multiprocessors): a column of one element every 3 rows apart (32 lanes a plane, r25's form in
# "sliced"), planes of 3 x 1 and 2 x 3 (a lane each, r59's and r58's forms).
GRID_SHAPES = [(150, 100, 333, 1), (4000, 100, 3, 1), (1500, 300, 2, 3)]


@pytest.mark.parametrize("layout", ["sliced", "rows", "transposed"])
@pytest.mark.parametrize("shape", GRID_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_plane_lanes_grid_of_a_block_a_turn_reads_what_a_persistent_grid_reads(dtype, shape, layout):
    """Past the blocks a device holds, the plane-lanes reader's grid of a block a turn (the rule) and a persistent grid
    of the resident blocks taking turns (forced) read the same sums bitwise (a plane's lanes add in one order whatever
    the grid), each within x's dtype's tolerance of float64, the output within it of the model."""
    x, weight, conv_bias, bias = _plane_lanes_problem(*shape, dtype, layout)
    _check_forced_sums("plane_lanes", x, weight, conv_bias, bias)
    with forced_plane_lanes_persistent(True):
        _check_forced_sums("plane_lanes", x, weight, conv_bias, bias)
        with forced_plan("split", "plane_lanes", "tiled_lse"):
            persistent = torch.ops.fusedlse.forward(x, weight, conv_bias, bias)[1]
    with forced_plan("split", "plane_lanes", "tiled_lse"):
        assert torch.equal(torch.ops.fusedlse.forward(x, weight, conv_bias, bias)[1], persistent)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_plane_lanes_planes_of_a_block_each_past_one_wave_read_by_fewer_pieces(dtype):
    """800 contiguous planes of 256 x 256 take a block each where a device holds 528 to 1056 blocks of 256 threads (132
    multiprocessors of 2048), its 8 groups the plane's pieces; past the blocks the vector walk's kernel holds at once
    (528 on the H100 and H200) the rule cuts them into fewer pieces. Its sums (and the 8 pieces' as forced) within x's
    dtype's tolerance of float64 and bitwise the same on a second run, the output within it of the model."""
    x, weight, conv_bias, bias = _plane_lanes_problem(100, 8, 256, 256, dtype, "contiguous")
    _check_forced_sums("plane_lanes", x, weight, conv_bias, bias)
    with forced_plane_lanes_pieces(8):
        _check_forced_sums("plane_lanes", x, weight, conv_bias, bias)


@pytest.mark.parametrize("pieces", [2, 4, 16])
@pytest.mark.parametrize("layout", ["sliced", "transposed"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_plane_lanes_reader_sums_forced_pieces(dtype, layout, pieces):
    """Planes of 333 elements cut into pieces as forced: strided columns ("sliced", r25's form: 32 lanes a plane,
    scalar loads; 2 and 4 pieces in a block, 16 more than a block's 8 groups and a lane's 10 loads: 10 pieces added by
    a second launch) and contiguous planes ("transposed": 16-byte vectors, the last piece adding the tail). The sums
    within x's dtype's tolerance of float64, bitwise the same on a second run, the output within it of the model."""
    x, weight, conv_bias, bias = _plane_lanes_problem(20, 30, 333, 1, dtype, layout)
    with forced_plane_lanes_pieces(pieces):
        _check_forced_sums("plane_lanes", x, weight, conv_bias, bias)


def _runs(x, layout):
    """x's values with every plane contiguous and each batch's planes adjacent: one run of every plane ("contiguous",
    "offset": starting one element past alignment), or a run per batch starting anywhere in a 16-byte vector
    ("channel_slice": x[:, 1:C+1] of a tensor with two more channels; "batch_slice": every other batch)."""
    if layout in ("contiguous", "offset"):
        return lay_out(x, layout)
    b, c, h, w = x.shape
    if layout == "channel_slice":
        view = torch.full((b, c + 2, h, w), float("nan"), dtype=x.dtype, device=x.device)[:, 1:c + 1]
    else:
        view = torch.full((2 * b, c, h, w), float("nan"), dtype=x.dtype, device=x.device)[::2]
    view.copy_(x)
    return view


# (B, C_in, H, W) of the run walk (planes of up to 32 elements of 16 or 32 bits, adjacent; float64 takes the scalar
# walk or the staged one): planes of 1 to 32 elements, items of one vector and of several, the last item of a run
# shorter, runs of 2 to 220 planes; r14's (220 planes of 2 float16, runs 4 bytes past alignment in channel_slice) and r13's planes (8 of
# 5 x 6). (7, 2, 1, 3) in the sliced layouts: runs of 12 bytes in 16-bit, too short for the walk (the scalar walk
# reads them). Planes of 1, 2, 4 and 8 elements (16 bytes at most) that never straddle a vector (contiguous, the
# slices of C and B, planes of 1 in "offset") are summed whole per vector ("vector_planes"), runs starting anywhere
# in their first vector. The staged walk takes runs of 4096 planes or more (shorter ones fall back to the run walk):
# (37, 300, 1, 7) is one run of several tiles in the contiguous and offset layouts, its last tile part full;
# (3, 5000, 1, 3) three runs of 5000 planes starting anywhere in a vector in channel_slice.
RUN_SHAPES = [(3000, 1, 1, 1), (100, 53, 1, 1), (65, 220, 1, 2), (90, 3, 1, 5), (700, 9, 2, 3), (40, 8, 5, 6),
              (50, 133, 2, 2), (64, 12, 3, 5), (20, 5, 1, 31), (30, 17, 4, 8), (7, 2, 1, 3), (40, 6, 2, 4),
              (37, 300, 1, 7), (3, 5000, 1, 3)]
# Each shape under each walk that can read it (the planner picks one by plane size: plan::tiny_plane_walk).
RUN_WALKS = [(shape, walk) for shape in RUN_SHAPES
             for walk in WALKS if walk != "vector_planes" or shape[2] * shape[3] in (1, 2, 4, 8)]


@pytest.mark.parametrize("layout", ["contiguous", "offset", "channel_slice", "batch_slice"])
@pytest.mark.parametrize("shape,walk", RUN_WALKS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_run_walk_sums_every_plane(dtype, shape, walk, layout):
    """The sums forward() saves, read by the plane-lanes reader (forced, also on planes of one element) where planes
    follow each other, by `walk` (forced), against float64 (the gaps of the sliced layouts hold NaN: a walk that adds
    a neighbour's slot shows); bitwise the same on a second run; the output against the model."""
    x, weight, conv_bias, bias = make_problem(*shape, 3, 1, 1, dtype=dtype, device="cuda")
    _check_forced_sums("plane_lanes", _runs(x, layout), weight, conv_bias, bias, walk)


@pytest.mark.parametrize("kernel", [(1, 1), (3, 3), (7, 6)], ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "offset", "transposed"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_split_sums_the_weight_in_every_layout(dtype, layout, kernel):
    """The split strategy's W.sum((2, 3)) goes through the readers: taps of one element (a copy through torch), tiny
    planes (any layout) and planes of 42 taps (fusedlse's reader where the taps' W is contiguous, torch's else)."""
    x, weight, conv_bias, bias = make_problem(33, 5, 3, 4, 7, *kernel, dtype=dtype, device="cuda")
    weight = _strided(weight, layout) if layout == "transposed" else lay_out(weight, layout)
    with forced_plan("split", "plane_lanes", "tiled_lse"):
        out = fusedlse_cuda.forward(x, weight, conv_bias, bias)
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias)) <= TOLERANCE[dtype]


@pytest.mark.parametrize("kernel", [(1, 1), (3, 3), (7, 6)], ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_channel_rows_reader_folds_the_weight(dtype, layout, kernel):
    """The channel-rows reader sums a contiguous weight's taps in its own launch, on a grid widened to a thread per
    W.sum value (two batches of 35 pixels alone would take two blocks); a weight of another layout takes a launch of
    its own. Poisoned memory: a W.sum value nobody wrote would show."""
    x, weight, conv_bias, bias = make_problem(2, 6, 5, 7, 700, *kernel, dtype=dtype, device="cuda",
                                              layout="channels_last")
    if layout == "transposed":
        weight = _strided(weight, layout)
    _check_forced(("split", "channel_rows", "tiled_lse"), x, weight, conv_bias, bias)


def _check_forced(plan, x, weight, conv_bias, bias):
    """The forward under `plan` (strategy, reader, epilogue) on poisoned memory: bitwise the same on a second call,
    and within x's dtype's tolerance of the float64 model."""
    poison_allocator("cuda")
    with forced_plan(*plan):
        out = fusedlse_cuda.forward(x, weight, conv_bias, bias)
        again = fusedlse_cuda.forward(x, weight, conv_bias, bias)
    assert torch.equal(out, again)
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias)) <= TOLERANCE[x.dtype]


# (B, C_in, H, W, C_out, dtype): channels-last x whose weight is past the 16 MiB the channel-rows reader folds
# (kReaderFoldMaxWeightBytes), so W.sum goes first and the reader runs beside it: by the pixel-vector walk (2 x 2
# planes, 32K threads), the vector walk (1024 channels of 420 pixels) and the scalar walk (100 channels).
BESIDE_WEIGHT_SUM_PROBLEMS = [(128, 1024, 2, 2, 1024, torch.float32), (2, 1024, 20, 21, 1024, torch.bfloat16),
                              (2, 100, 20, 21, 5000, torch.float32)]


@pytest.mark.parametrize("problem", BESIDE_WEIGHT_SUM_PROBLEMS, ids=str)
def test_channel_rows_beside_weight_sum_matches_float64_model(problem):
    """The channel-rows reader forced beside W.sum's own launch (a weight too large to fold): the model's result,
    bitwise the same on a second run."""
    batch, c_in, height, width, c_out, dtype = problem
    x, weight, conv_bias, bias = make_problem(batch, c_in, height, width, c_out, 3, 3, dtype=dtype, device="cuda",
                                              layout="channels_last")
    assert weight.numel() * weight.element_size() > 16 << 20
    _check_forced(("split", "channel_rows", None), x, weight, conv_bias, bias)


# A 1 x 1 kernel: float32 and float64 weights are their own W.sum in the split strategy (plan::weight_is_its_sum: no
# pass over the weight), unless the weight is not contiguous; 16-bit weights are summed into float32 as any other.
@pytest.mark.parametrize("plan", ["split_lanes", "split_torch", "split_cublas", "split_rows", "split_rows_lse",
                                  "split_narrow_lse"])
@pytest.mark.parametrize("weight_layout", ["contiguous", "not_contiguous"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_split_with_a_one_by_one_kernel_matches_float64_model(dtype, weight_layout, plan):
    x, weight, conv_bias, bias = make_problem(300, 6, 4, 5, 9, 1, 1, dtype=dtype, device="cuda",
                                              layout="channels_last")
    if weight_layout == "not_contiguous":
        weight = weight.transpose(0, 1).contiguous().transpose(0, 1)  # the same values, C_in innermost
        assert not weight.is_contiguous()
    own_sum = dtype in (torch.float32, torch.float64) and weight_layout == "contiguous"
    assert fusedlse_cuda.explain(x, weight)["weight_sum"] == ("weight" if own_sum else "summed")
    _check_forced(PLANS[plan], x, weight, conv_bias, bias)
    _check_forced(PLANS[plan], x, weight, None, bias)


def _check_forced_epilogue(plan, expected_epilogue, batch, c_in, c_out, dtype):
    """An epilogue's problem of batch x c_in planes of 2 and C_out c_out under `plan`: explain() names
    expected_epilogue, and _check_forced holds with conv_bias and without it (then with a single bias value,
    stride 0)."""
    x, weight, conv_bias, bias = make_problem(batch, c_in, 2, 1, c_out, 1, 2, dtype=dtype, device="cuda")
    with forced_plan(*plan):
        assert fusedlse_cuda.explain(x, weight)["epilogue"] == expected_epilogue
    _check_forced(plan, x, weight, conv_bias, bias)
    _check_forced(plan, x, weight, None, bias[:1, :1, :1])


# (B, C_in, C_out): each tile of the tiled GEMM + logsumexp (csrc/cuda/tuning.h, kGemmTiles) with partial row,
# channel and column tiles, one column run and several; the last three take the bfloat16 tensor-core tile in 16-bit
# x on a device whose tensor cores pay (BF16_TILE_CASES below).
TILED_CASES = [(1, 1, 1), (257, 9, 8), (300, 17, 9), (129, 7, 32), (1000, 33, 33), (259, 8, 64), (513, 3, 65),
               (2000, 40, 300), (300, 300, 129), (33, 20, 4099), (5, 1, 700), (70, 1000, 200), (17000, 9, 130),
               (8500, 37, 65), (20001, 50, 869)]


@pytest.mark.parametrize("b,c_in,c_out", TILED_CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_tiled_epilogue_matches_float64_model(dtype, b, c_in, c_out):
    x, weight, conv_bias, bias = make_problem(b, c_in, 2, 3, c_out, 2, 2, dtype=dtype, device="cuda")
    _check_forced(("split", "plane_lanes", "tiled_lse"), x, weight, conv_bias, bias)


# (B, C_in, C_out) of 16-bit x whose tiled epilogue takes the bfloat16 tensor-core tile (explain's tiled_tile 6) on a
# device whose tensor cores pay for it (plan::bf16_tile_applies): one partial step of 16 channels (9), two and a
# partial one (37) over two column tiles, r09's GEMM (14 column tiles), and 200 channels, whose 13 steps of pieces take
# 104 KiB of shared memory a block (where two such blocks fit a multiprocessor: tuning.h, bf16_mma_fits); and 90
# channels, whose six steps take 48 KiB of pieces, which with the tile's own 2 KiB must be opted in (the test below).
BF16_TILE_CASES = [(17000, 9, 130), (8500, 37, 65), (20001, 50, 869), (17000, 200, 100), (17000, 90, 64)]


def _bf16_tile_expected(plan, c_in):
    """Whether the planner must take the bfloat16 tile for this (tile-filling) problem on its device."""
    device = plan["device"]
    staged = -(-c_in // 16) * 8192
    return (device["bf16_gflops"] >= 8 * device["fp32_gflops"] and
            2 * (staged + 2048 + 1024) <= device["shared_bytes_per_sm"])


@pytest.mark.parametrize("b,c_in,c_out", BF16_TILE_CASES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_bf16_tile_matches_float64_model(dtype, b, c_in, c_out):
    x, weight, conv_bias, bias = make_problem(b, c_in, 2, 3, c_out, 2, 2, dtype=dtype, device="cuda")
    with forced_plan("split", "plane_lanes", "tiled_lse"):
        plan = fusedlse_cuda.explain(x, weight)
    if not _bf16_tile_expected(plan, c_in):
        pytest.skip(f"the bfloat16 tile does not pay or fit here: {plan['device']}")
    assert plan["tiled_tile"] == 6, plan
    _check_forced(("split", "plane_lanes", "tiled_lse"), x, weight, conv_bias, bias)
    _check_forced(("split", "plane_lanes", "tiled_lse"), x, weight, None, bias[:1, :1, :1])


def test_bf16_tile_of_six_steps_in_a_fresh_process():
    """The bfloat16 tile over 81-96 channels, six steps of pieces (48 KiB of dynamic shared memory, and 2 KiB of the
    tile's own), in a process where no launch of the tile has opted in yet: the launch must opt in, since the two
    together pass the 48 KiB a block takes by default. Counting only the pieces, it failed with "invalid argument"
    wherever no launch of more channels had come first in the process (six cases of the fuzz of s88: C_in or the
    cropped GEMM's depth 81, 82, 84, 90 and 96; docs/limits.md §110). A process of its own: any earlier launch of more
    channels leaves the kernel opted in."""
    import json
    import os
    import subprocess
    import sys

    script = """
import json, torch, fusedlse_cuda
from fusedlse_cuda import reference
from fusedlse_cuda.planning import forced_plan
from helpers import make_problem, rel_err
x, weight, conv_bias, bias = make_problem(17000, 90, 2, 3, 64, 2, 2, dtype=torch.float16, device="cuda")
with forced_plan("split", "plane_lanes", "tiled_lse"):
    plan = fusedlse_cuda.explain(x, weight)
    out = fusedlse_cuda.forward(x, weight, conv_bias, bias)
torch.cuda.synchronize()
print(json.dumps(dict(plan=plan, err=rel_err(out, reference.truth(x, weight, conv_bias, bias)))))
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if not _bf16_tile_expected(result["plan"], 90):
        pytest.skip(f"the bfloat16 tile does not pay or fit here: {result['plan']['device']}")
    assert result["plan"]["tiled_tile"] == 6, result["plan"]
    assert result["err"] <= TOLERANCE[torch.float16], result


# (B, C_in, C_out): thin GEMMs over many channels, whose tiled epilogue splits the channels (split-K: a few row and
# column tiles, each a long chain of depth steps): every tile, a last range shorter than the others, rows and
# columns past the last tile's; few rows of 1000 and 3860 logits, whose partials bias_lse's row kernel adds; one
# column tile over 5 row tiles of the tensor-core tile (61 float64 columns), whose partials a warp a row adds.
SPLIT_K_CASES = [(15, 1125, 135), (7, 5000, 300), (100, 3001, 20), (3, 777, 4), (40, 2000, 1000), (200, 1500, 70),
                 (15, 686, 3860), (150, 1400, 61)]


@pytest.mark.parametrize("b,c_in,c_out", SPLIT_K_CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_split_k_epilogue_matches_float64_model(dtype, b, c_in, c_out):
    x, weight, conv_bias, bias = make_problem(b, c_in, 1, 2, c_out, 1, 2, dtype=dtype, device="cuda")
    with forced_plan("split", "plane_lanes", "tiled_lse"):
        assert fusedlse_cuda.explain(x, weight)["tiled_k_splits"] > 1
    _check_forced(("split", "plane_lanes", "tiled_lse"), x, weight, conv_bias, bias)
    _check_forced(("split", "plane_lanes", "tiled_lse"), x, weight, None, bias[:1, :1, :1])


# x of one-element planes in place, read by the tiled epilogue itself (reader "in_epilogue"): a slice of wider planes
# (rows and channels apart by whole planes of 2 x 3), every other channel of them (the weight's rows sliced alike, so
# it is summed, not its own W.sum), every other batch, and contiguous [B, C_in, 1, 1]; every tile of TILED_CASES and
# the split-K cases (each range's blocks save their channels of the sums).
IN_EPILOGUE_LAYOUTS = ["contiguous", "sliced_hw", "channel_slice", "batch_slice"]


def _planes_in_layout(layout, b, c_in, c_out, dtype, parent_hw, window, kernel_hw=(1, 1)):
    """(x, weight, conv_bias, bias) of b x c_in planes x[:, :, window[0], window[1]] cut from planes of parent_hw, in
    `layout` (IN_EPILOGUE_LAYOUTS): copied contiguous, left in place, every other channel (the weight's rows sliced
    alike) or every other batch of twice as many."""
    batches = 2 * b if layout == "batch_slice" else b
    channels = 2 * c_in if layout == "channel_slice" else c_in
    x, weight, conv_bias, bias = make_problem(batches, channels, *parent_hw, c_out, *kernel_hw, dtype=dtype,
                                              device="cuda")
    x = x[:, :, window[0], window[1]]
    if layout == "contiguous":
        return x.contiguous(), weight, conv_bias, bias
    if layout == "channel_slice":
        return x[:, ::2], weight[::2], conv_bias, bias
    return x[::2 if layout == "batch_slice" else 1], weight, conv_bias, bias


def _one_element_planes(layout, b, c_in, c_out, dtype):
    """(x, weight, conv_bias, bias) of b x c_in planes of one element in `layout` (IN_EPILOGUE_LAYOUTS)."""
    return _planes_in_layout(layout, b, c_in, c_out, dtype, (2, 3), (slice(1, None), slice(2, None)))


@pytest.mark.parametrize("layout", IN_EPILOGUE_LAYOUTS)
@pytest.mark.parametrize("b,c_in,c_out", TILED_CASES + SPLIT_K_CASES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_epilogue_reads_one_element_planes_in_place(dtype, b, c_in, c_out, layout):
    """The forward's sums are x's values exactly (each saved once, by the blocks that load it first), the output
    within tolerance of the float64 model and bitwise the same on a second call."""
    x, weight, conv_bias, bias = _one_element_planes(layout, b, c_in, c_out, dtype)
    with forced_plan("split", "in_epilogue", "tiled_lse"):
        plan = fusedlse_cuda.explain(x, weight)
        assert (plan["reader"], plan["epilogue"]) == ("in_epilogue", "tiled_lse")
    _check_forced_sums("in_epilogue", x, weight, conv_bias, bias)
    with forced_plan("split", "in_epilogue", "tiled_lse"):
        sums = torch.ops.fusedlse.forward(x, weight, None, bias[:1, :1, :1])[1]
    assert torch.equal(sums, x[:, :, 0, 0])


# float64 planes of a few elements summed by the tensor-core tile itself (reader "in_epilogue", plan::tile_sums_planes):
# rows of 8 to 32 elements, planes of up to 32; B a whole number of 32-row tiles or not (under one tile too), one to
# 32 channels, one column tile or several in one run (B of 20000: 625 row tiles fill the H200's 396 block slots); a
# 2 x 1 kernel (W.sum summed) or 1 x 1 (the weight is W.sum); x contiguous, a slice of wider rows ("sliced_hw"),
# every other channel or every other batch of a larger x.
TILE_PLANES_CASES = [(13, 3, 50, 3, 10, 2), (70, 1, 33, 1, 8, 2), (333, 32, 60, 4, 8, 1), (1000, 25, 64, 2, 16, 2),
                     (20000, 25, 130, 1, 24, 1), (20000, 9, 200, 1, 32, 2)]


def _tile_planes(layout, b, c_in, c_out, height, width, kernel_height):
    """(x, weight, conv_bias, bias) of b x c_in float64 planes of height x width in `layout` (IN_EPILOGUE_LAYOUTS)."""
    return _planes_in_layout(layout, b, c_in, c_out, torch.float64, (height + 1, width + 5),
                             (slice(1, None), slice(3, width + 3)), (kernel_height, 1))


@pytest.mark.parametrize("layout", IN_EPILOGUE_LAYOUTS)
@pytest.mark.parametrize("b,c_in,c_out,height,width,kernel_height", TILE_PLANES_CASES, ids=str)
def test_tensor_core_tile_sums_float64_planes(b, c_in, c_out, height, width, kernel_height, layout):
    """Forced: the saved sums within float64's tolerance of x's and bitwise the same on a second call, the output
    within it of the float64 model, and (up to 1000 rows) x's gradient too."""
    x, weight, conv_bias, bias = _tile_planes(layout, b, c_in, c_out, height, width, kernel_height)
    with forced_plan("split", "in_epilogue", "tiled_lse"):
        plan = fusedlse_cuda.explain(x, weight)
        assert (plan["reader"], plan["epilogue"], plan["tiled_k_splits"]) == ("in_epilogue", "tiled_lse", 1)
    _check_forced_sums("in_epilogue", x, weight, conv_bias, bias)
    if b > 1000:
        return
    leaf = x.detach().clone().requires_grad_(True)
    model_leaf = x.detach().cpu().requires_grad_(True)
    with forced_plan("split", "in_epilogue", "tiled_lse"):
        (grad,) = torch.autograd.grad(fusedlse_cuda.forward(leaf, weight, conv_bias, bias).sum(), leaf)
    model_out = reference.model_forward(model_leaf, weight.cpu(), conv_bias.cpu(), bias.cpu())
    (expected,) = torch.autograd.grad(model_out.sum(), model_leaf)
    assert rel_err(grad, expected) <= TOLERANCE[torch.float64]


@pytest.mark.parametrize("planes", ["float32", "rows_of_7", "plane_of_40", "channels_33", "c_out_32"])
def test_tensor_core_tile_sums_only_planes_it_takes(planes):
    """Forced on planes the tile cannot sum, the reader the planner would take runs instead, as exact."""
    b, c_in, c_out, height, width = {"rows_of_7": (300, 5, 50, 1, 7), "plane_of_40": (300, 5, 50, 5, 8),
                                     "channels_33": (300, 33, 50, 1, 8), "c_out_32": (300, 5, 32, 1, 8)}.get(
                                         planes, (300, 5, 50, 1, 8))
    dtype = torch.float32 if planes == "float32" else torch.float64
    x, weight, conv_bias, bias = make_problem(b, c_in, height, width, c_out, 2, 1, dtype=dtype, device="cuda")
    with forced_plan("split", "in_epilogue", "tiled_lse"):
        assert fusedlse_cuda.explain(x, weight)["reader"] == "plane_lanes"
    _check_forced(("split", "in_epilogue", "tiled_lse"), x, weight, conv_bias, bias)


# Strided planes of 2 to 8 elements summed by the narrow epilogue itself (reader "in_epilogue", epilogue "narrow_lse",
# plan::narrow_reads_planes): (B, C_in, C_out, parent planes, kernel), x the parent's [:, :, 1:, 2:] (r59's form: 3 x 1
# elements 3 apart; 2 x 3 rows 5 apart; 2 x 4; 4 x 2), every column count (4, 8, 16, 32) and lane group (8 and 32),
# batches that leave a group's last rows empty, one batch, one channel; the kernel's weight summed or its own.
NARROW_PLANES_CASES = [(37, 150, 4, (4, 3), (2, 1)), (5, 300, 7, (3, 5), (1, 1)), (1, 70, 13, (3, 6), (2, 2)),
                       (203, 33, 32, (3, 3), (1, 1)), (1001, 5, 2, (5, 4), (1, 2)), (9, 1, 3, (3, 4), (1, 1)),
                       (3, 1000, 5, (4, 3), (1, 1))]
NARROW_PLANES_LAYOUTS = ["sliced_hw", "channel_slice", "batch_slice", "transposed"]


@pytest.mark.parametrize("layout", NARROW_PLANES_LAYOUTS)
@pytest.mark.parametrize("b,c_in,c_out,parent_hw,kernel_hw", NARROW_PLANES_CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_narrow_epilogue_sums_strided_planes_in_place(dtype, b, c_in, c_out, parent_hw, kernel_hw, layout):
    """_check_narrow_reads_x, the sums within tolerance of float64's."""
    x, weight, conv_bias, bias = _planes_in_layout("sliced_hw" if layout == "transposed" else layout, b, c_in, c_out,
                                                   dtype, parent_hw, (slice(1, None), slice(2, None)), kernel_hw)
    if layout == "transposed":
        x = x.transpose(2, 3)  # columns of stride 1 become rows: no contiguous rows left
    _check_narrow_reads_x(x, weight, conv_bias, bias, exact_sums=False)


def _check_narrow_reads_x(x, weight, conv_bias, bias, exact_sums):
    """The narrow epilogue reading x itself, forced on poisoned memory: the saved sums x's values widened bitwise
    (exact_sums: planes of one element) or within x's dtype's tolerance of float64's sums, the output within it of the
    float64 model, both bitwise the same on a second call, and the output the same where no sums are kept (the kernel
    then writes none); up to 1000 rows, x's gradient (from the sums it saved) within tolerance of the model's."""
    dtype = x.dtype
    with forced_plan("split", "in_epilogue", "narrow_lse"):
        plan = fusedlse_cuda.explain(x, weight)
        assert (plan["reader"], plan["epilogue"], plan["narrow_k_splits"]) == ("in_epilogue", "narrow_lse", 1)
        poison_allocator("cuda")
        out, sums = torch.ops.fusedlse.forward(x, weight, conv_bias, bias)
        out_again, sums_again = torch.ops.fusedlse.forward(x, weight, conv_bias, bias)
        out_unkept = torch.ops.fusedlse.forward(x, weight, conv_bias, bias, keep_sums=False)[0]
    if exact_sums:
        assert torch.equal(sums, x.float().sum((2, 3)))
    else:
        assert rel_err(sums, x.double().sum((2, 3))) <= TOLERANCE[dtype]
    assert torch.equal(sums, sums_again) and torch.equal(out, out_again) and torch.equal(out, out_unkept)
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias)) <= TOLERANCE[dtype]
    if x.shape[0] > 1000:
        return
    leaf = x.detach().requires_grad_(True)  # the same strided view
    model_leaf = x.detach().cpu().double().requires_grad_(True)
    with forced_plan("split", "in_epilogue", "narrow_lse"):
        (grad,) = torch.autograd.grad(fusedlse_cuda.forward(leaf, weight, conv_bias, bias).sum(), leaf)
    model_out = reference.model_forward(model_leaf, weight.cpu().double(), conv_bias.cpu().double(),
                                        bias.cpu().double())
    (expected,) = torch.autograd.grad(model_out.sum(), model_leaf)
    assert rel_err(grad, expected) <= TOLERANCE[dtype]


# 16-bit x's planes of one element loaded by the narrow epilogue as its sums (reader "in_epilogue", epilogue
# "narrow_lse", NarrowSource::kElementsInX): (B, C_in, C_out) of every column count (4, 8, 16, 32) and lane group (8
# and 32), batches that leave a group's last rows empty, one batch, one channel.
NARROW_ELEMENTS_CASES = [(37, 150, 4), (5, 300, 7), (1, 70, 13), (203, 33, 32), (1001, 5, 2), (9, 1, 3), (3, 1000, 5),
                         (4099, 53, 2)]


@pytest.mark.parametrize("layout", IN_EPILOGUE_LAYOUTS + ["channels_last"])
@pytest.mark.parametrize("b,c_in,c_out", NARROW_ELEMENTS_CASES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_narrow_epilogue_loads_one_element_planes_in_place(dtype, b, c_in, c_out, layout):
    """_check_narrow_reads_x, the sums x's values widened, bitwise."""
    if layout == "channels_last":
        x, weight, conv_bias, bias = _one_element_planes("contiguous", b, c_in, c_out, dtype)
        x = x.contiguous(memory_format=torch.channels_last)
    else:
        x, weight, conv_bias, bias = _one_element_planes(layout, b, c_in, c_out, dtype)
    _check_narrow_reads_x(x, weight, conv_bias, bias, exact_sums=True)


@pytest.mark.parametrize("dtype,height", [(torch.float16, 1), (torch.bfloat16, 1), (torch.float32, 2)], ids=str)
def test_epilogue_reads_x_only_where_its_planes_are_its_sums(dtype, height):
    """Forced on 16-bit x or planes of more than one element, the reader the planner would take runs instead."""
    x, weight, conv_bias, bias = make_problem(300, 20, height, 1, 70, 1, 1, dtype=dtype, device="cuda")
    with forced_plan("split", "in_epilogue", "tiled_lse"):
        assert fusedlse_cuda.explain(x, weight)["reader"] == "plane_lanes"
    _check_forced(("split", "in_epilogue", "tiled_lse"), x, weight, conv_bias, bias)


def test_cropped_gemm_rows_take_no_reader():
    """padding's cropped GEMM over rows that are sums already (a padding-0 forward of 1 x 1 planes) runs its epilogue
    alone: its plan never has the tiled epilogue read x, whose rows the same problem would give it unpadded."""
    padded = fusedlse_cuda.explain(*make_problem(50000, 4, 3, 3, 1000, 2, 2, device="cuda")[:2], padding=1)
    gemm = padded["gemm"]["problem"]
    assert padded["strategy"] == "cropped" and (gemm["height"], gemm["width"]) == (1, 1)
    assert (padded["gemm"]["reader"], padded["gemm"]["epilogue"]) == ("plane_lanes", "tiled_lse")
    rows, weight_rows = make_problem(gemm["batch"], gemm["in_channels"], 1, 1, gemm["out_channels"], 1, 1,
                                     device="cuda")[:2]
    assert fusedlse_cuda.explain(rows, weight_rows)["reader"] == "in_epilogue"


def test_planner_choice_is_what_runs():
    """forced_plan hands the choice back when the block ends."""
    x, weight, _, _ = make_problem(10**5, 4, 1, 1, 64, 3, 3, device="cuda")
    with forced_plan("fused"):
        assert fusedlse_cuda.explain(x, weight)["strategy"] == "fused"
    plan = fusedlse_cuda.explain(x, weight)
    assert plan["strategy"] == "split" and not plan["why"].startswith("forced")
