"""sum_hw and gemm_lse, the two halves of the forward, each against float64."""
import math

import pytest
import torch

import fusedlse_cuda
from fusedlse_cuda import reference
from fusedlse_cuda.planning import forced_plan
from helpers import DEVICES, HAS_CUDA, DTYPES, LAYOUTS, lay_out, make_problem, poison_allocator

SUM_TOLERANCE = {torch.float64: 1e-12, torch.float32: 2e-6, torch.float16: 2e-6, torch.bfloat16: 2e-6}


# The last two: 16-bit x of more than 2^20 elements, which the CPU backend widens in its plane loop where rows are
# contiguous and converts by pieces otherwise (channels-last; plane_sums): of 34 whole batches (the last piece 3), and
# of 582 rows of every channel (the last 118). (64, 33, 5, 7): planes under the loop's 64 elements; (4, 3, 1001, 1):
# sliced and channels-last, a column of values apart, by 8 chains and 1 left over. (2, 300, 9, 10) and (1, 70, 40, 40):
# channels-last 16-bit x by the CPU's channel loop, in two blocks of channels, and in ranges of pixels past a flush.
SUM_HW_SHAPES = [(2, 3, 8, 8), (1, 4, 509, 509), (3, 70, 1, 1), (2, 5, 300, 200), (64, 33, 5, 7), (37, 3, 100, 100),
                 (4, 3, 1001, 1), (2, 300, 9, 10), (1, 70, 40, 40), (2, 3, 700, 600)]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SUM_HW_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_sum_hw_matches_float64(device, dtype, shape, layout):
    x, *_ = make_problem(*shape, 1, 1, 1, dtype=dtype, device=device, layout=layout)
    poison_allocator(device)
    sums = fusedlse_cuda.sum_hw(x)
    assert sums.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert sums.shape == shape[:2]
    truth = x.to("cpu", torch.float64).sum(dim=(2, 3))
    # Relative to the sum of magnitudes: the error bound of a float32 sum of exactly rounded inputs.
    scale = x.to("cpu", torch.float64).abs().sum(dim=(2, 3)).clamp_min(1.0)
    assert ((sums.cpu().double() - truth).abs() / scale).max().item() <= SUM_TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_cpu_sum_hw_widens_every_16_bit_pattern(dtype):
    """The CPU backend's plane loop widens 16-bit x itself (csrc/cpu: F16C's conversion of 8 values where the CPU has
    it, a run's last few through a zeroed copy of 8; bit operations without it): each of the 65536 patterns alone in a
    plane of 67-element rows, at column 0 (a whole vector) and at column 66 (the rest), sums to its float32 value
    exactly (NaN to NaN). Planes of one row are one run (summed as they are widened); rows with gaps go through the
    lanes (widened and added)."""
    patterns = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16).view(dtype)
    want = patterns.float()
    for rows, row_stride in ((1, 67), (2, 70)):
        x = torch.zeros(65536, 2, rows, row_stride, dtype=dtype)[..., :67]
        x[:, 0, 0, 0] = patterns
        x[:, 1, rows - 1, 66] = patterns
        torch.testing.assert_close(fusedlse_cuda.sum_hw(x), torch.stack([want, want], dim=1), rtol=0, atol=0,
                                   equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_cpu_tap_sums_widen_every_16_bit_pattern_in_border_rows(dtype):
    """Padding's plane loop on the CPU (a border row's head and tail columns one by one, F16C's scalar conversion for
    float16 where the CPU has it; its middle by the run sum, a run's last few as its last 8 again, masked): each of the
    65536 patterns alone in a plane of 3 x 19 (rows 21 apart) gives the taps float64 x gives (NaN to NaN; each tap's
    sum is that one value or 0): in a border row's head column, last middle column (the masked rest), the column
    before it (in the vector whose lanes the mask leaves out) and tail column, and in the middle row (lanes: its last
    whole vector, the column before the masked rest, the rest)."""
    patterns = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16).view(dtype)
    x = torch.zeros(65536, 7, 3, 21, dtype=dtype)[..., :19]
    for channel, (row, col) in enumerate([(0, 0), (2, 17), (2, 16), (0, 18), (1, 9), (1, 15), (1, 17)]):
        x[:, channel, row, col] = patterns
    got = fusedlse_cuda.tap_sums(x, (3, 3), padding=1)
    want = fusedlse_cuda.tap_sums(x.double(), (3, 3), padding=1).float()
    torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cpu_sum_hw_of_channel_slices(dtype):
    """A slice of channels-last x's channels (stride 1 along C, pixels 300 apart): the CPU's channel loop (16-bit x)
    reads each pixel's channels where they lie, and ATen the rest; NaN in the channels left out must add nothing."""
    x, *_ = make_problem(3, 298, 11, 13, 1, 1, 1, dtype=dtype, layout="channels_last")
    big = torch.full((3, 300, 11, 13), float("nan"), dtype=dtype).contiguous(memory_format=torch.channels_last)
    view = big[:, 1:299]
    view.copy_(x)
    assert view.stride(1) == 1 and view.stride(3) == 300
    poison_allocator("cpu")
    sums = fusedlse_cuda.sum_hw(view)
    truth = x.double().sum(dim=(2, 3))
    scale = x.double().abs().sum(dim=(2, 3)).clamp_min(1.0)
    assert ((sums.double() - truth).abs() / scale).max().item() <= SUM_TOLERANCE[dtype]


# 1300 rows: on the CPU the logits come a chunk of rows at a time, at C_out 4099 three chunks of 512 rows, the last
# partial.
@pytest.mark.parametrize("rows", [6, 1300])
@pytest.mark.parametrize("c_in,c_out", [(3, 5), (64, 128), (700, 33), (5, 4099)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_gemm_lse_matches_float64(device, dtype, c_in, c_out, rows):
    g = torch.Generator().manual_seed(1)
    sums = torch.randn(rows, c_in, generator=g, dtype=torch.float64) * 50
    weight_sum = torch.randn(c_in, c_out, generator=g, dtype=torch.float64) / c_in**0.5
    total_bias = torch.randn(c_out, generator=g, dtype=torch.float64)
    scale = 1 / 100.0
    truth = 10 * torch.logsumexp(sums @ weight_sum * scale + total_bias, dim=1, keepdim=True)
    to = lambda t: t.to(device=device, dtype=dtype)  # noqa: E731
    poison_allocator(device)
    out = fusedlse_cuda.gemm_lse(to(sums), to(weight_sum), to(total_bias), scale)
    assert out.shape == (rows, 1) and out.dtype == dtype
    tolerance = 1e-12 if dtype == torch.float64 else 2e-5
    assert ((out.cpu().double() - truth).abs().max() / truth.abs().max()).item() <= tolerance


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("c_in,c_out", [(3, 5), (20, 40), (3, 200), (9, 1000)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_gemm_lse_blocks_walk_many_row_tiles(dtype, c_in, c_out):
    """More tiles of rows than blocks fit on the device at once (70001 rows, the last tile partial), with one and
    several column tiles and runs: every row's answer is its own, bitwise the same on a second call."""
    g = torch.Generator().manual_seed(3)
    sums = torch.randn(70001, c_in, generator=g, dtype=torch.float64) * 50
    weight_sum = torch.randn(c_in, c_out, generator=g, dtype=torch.float64) / c_in**0.5
    total_bias = torch.randn(c_out, generator=g, dtype=torch.float64)
    truth = 10 * torch.logsumexp(sums @ weight_sum / 7 + total_bias, dim=1, keepdim=True)
    to = lambda t: t.to(device="cuda", dtype=dtype)  # noqa: E731
    poison_allocator("cuda")
    out = fusedlse_cuda.gemm_lse(to(sums), to(weight_sum), to(total_bias), 1 / 7)
    assert torch.equal(out, fusedlse_cuda.gemm_lse(to(sums), to(weight_sum), to(total_bias), 1 / 7))
    tolerance = 1e-12 if dtype == torch.float64 else 2e-5
    assert ((out.cpu().double() - truth).abs().max() / truth.abs().max()).item() <= tolerance


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("rows,channels", [(70, 25), (4000, 25), (15, 1200)])
@pytest.mark.parametrize("case", ["plus_inf_late", "nan_late", "minus_inf_columns", "far_below_the_max"])
def test_gemm_lse_float64_specials_in_later_column_tiles(case, rows, channels):
    """float64 over C_out 700 takes the tensor-core tile, eleven column tiles, with exps without a branch
    (csrc/cuda/kernels/reduce.cuh) that flush terms more than 708 below the running maximum to zero. 70 rows: a block
    per column tile (the planner's column runs fill the device). 4000 rows: each block walks 2-3 tiles, each one's
    biases and first step fetched during the previous tile's logsumexp; columns 500 and 650 lie in a run's second
    tile on 128-132 SMs. 15 rows of 1200 channels: split-K, the column tiles' channel ranges added by bias_lse's row
    kernel. A special value in a late tile, or half the columns that far below, must give torch.logsumexp's answer:
    the same infinities and NaNs, the finite rows within 1e-12; bitwise the same on a second call."""
    g = torch.Generator().manual_seed(5)
    sums = torch.randn(rows, channels, generator=g, dtype=torch.float64) * 5 / math.sqrt(channels / 25)
    weight_sum = torch.randn(channels, 700, generator=g, dtype=torch.float64) / 5
    total_bias = torch.randn(700, generator=g, dtype=torch.float64)
    if case == "plus_inf_late":
        total_bias[650] = float("inf")
    elif case == "nan_late":
        total_bias[500] = float("nan")
    elif case == "minus_inf_columns":
        total_bias[::3] = -float("inf")
    else:
        total_bias[1::2] = -1000.0
    truth = 10 * torch.logsumexp(sums @ weight_sum * 0.1 + total_bias, dim=1, keepdim=True)
    poison_allocator("cuda")
    out = fusedlse_cuda.gemm_lse(sums.cuda(), weight_sum.cuda(), total_bias.cuda(), 0.1).cpu()
    again = fusedlse_cuda.gemm_lse(sums.cuda(), weight_sum.cuda(), total_bias.cuda(), 0.1).cpu()
    assert torch.equal(out.nan_to_num(), again.nan_to_num()) and torch.equal(out.isnan(), again.isnan())
    assert torch.equal(out.isnan(), truth.isnan()) and torch.equal(out.isinf(), truth.isinf())
    assert torch.equal(out[truth.isinf()], truth[truth.isinf()])
    finite = truth.isfinite()
    if finite.any():
        assert ((out[finite] - truth[finite]).abs().max() / truth[finite].abs().max()).item() <= 1e-12


# Biases that rise or fall along C_out by `slope` a column: float64 logsumexps keep their reference maximum while
# no value passes it by more than 64 (csrc/cuda/kernels/reduce.cuh, lse_push_all), so these take the lazy path with
# terms up to e^64 (0.05: a rise of 35 over 700 columns), rescale in most pushes (1.0: 64 per 64-column tile), both
# (0.2), or flush terms more than 708 below it (-2.0).
RAMP_SLOPES = [0.05, 0.2, 1.0, -0.05, -2.0]


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("slope", RAMP_SLOPES, ids=str)
@pytest.mark.parametrize("epilogue", [None, "tiled_lse", "cublas_lse", "rows_lse", "narrow_lse", "gemv_lse"])
@pytest.mark.parametrize("c_out", [7, 700])
def test_float64_epilogues_follow_ramped_logits(c_out, epilogue, slope):
    """Every float64 epilogue (forced through the forward; None: gemm_lse, the tensor-core tile at 700 columns) on
    logits ramped along C_out: within 1e-12 of the float64 model, bitwise the same on a second call. Where an
    epilogue does not apply, the planner's stand-in runs."""
    x, weight, conv_bias, bias = make_problem(300, 5, 2, 3, c_out, 1, 2, dtype=torch.float64, device="cuda")
    ramp = slope * torch.arange(c_out, dtype=torch.float64)
    bias = (bias.cpu() * 0.1 + ramp.view(-1, 1, 1)).cuda()
    if epilogue is None:
        sums = x.sum(dim=(2, 3))
        weight_sum = weight.sum(dim=(2, 3))
        total_bias = conv_bias + bias.flatten()
        scale = 1 / (x.shape[2] * (x.shape[3] + 1))
        truth = 10 * torch.logsumexp((sums @ weight_sum * scale + total_bias).cpu(), dim=1, keepdim=True)
        poison_allocator("cuda")
        out = fusedlse_cuda.gemm_lse(sums, weight_sum, total_bias, scale)
        again = fusedlse_cuda.gemm_lse(sums, weight_sum, total_bias, scale)
    else:
        truth = reference.truth(x, weight, conv_bias, bias)
        poison_allocator("cuda")
        with forced_plan("split", None, epilogue):
            out = fusedlse_cuda.forward(x, weight, conv_bias, bias)
            again = fusedlse_cuda.forward(x, weight, conv_bias, bias)
    assert torch.equal(out, again)
    assert ((out.cpu() - truth).abs().max() / truth.abs().max()).item() <= 1e-12


@pytest.mark.parametrize("device", DEVICES)
def test_gemm_lse_takes_weight_sum_at_any_offset(device):
    # W.sum as a view 4 bytes past an aligned start (the old CUDA GEMM copied its rows in 16-byte pieces): same answer.
    g = torch.Generator().manual_seed(2)
    sums = torch.randn(5, 7, generator=g, dtype=torch.float64) * 50
    storage = torch.randn(7 * 12 + 1, generator=g, dtype=torch.float64)
    weight_sum = storage[1:].view(7, 12)
    total_bias = torch.randn(12, generator=g, dtype=torch.float64)
    truth = 10 * torch.logsumexp(sums @ weight_sum / 9 + total_bias, dim=1, keepdim=True)
    unaligned = storage.to(device=device, dtype=torch.float32)[1:].view(7, 12)
    assert unaligned.storage_offset() == 1 and unaligned.is_contiguous()
    out = fusedlse_cuda.gemm_lse(sums.to(device, torch.float32), unaligned, total_bias.to(device, torch.float32), 1 / 9)
    assert ((out.cpu().double() - truth).abs().max() / truth.abs().max()).item() <= 2e-5


@pytest.mark.parametrize("device", DEVICES)
def test_blocks_compose_to_forward(device):
    x, weight, conv_bias, bias = make_problem(3, 6, 10, 12, 9, 3, 2, device=device)
    scale = 1.0 / ((10 + 3 - 1) * (12 + 2 - 1))
    composed = fusedlse_cuda.gemm_lse(fusedlse_cuda.sum_hw(x), weight.sum((2, 3)), conv_bias + bias.flatten(), scale)
    direct = fusedlse_cuda.forward(x, weight, conv_bias, bias)
    torch.testing.assert_close(composed, direct, rtol=2e-6, atol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_sum_hw_of_layouts_agree_exactly_on_integers(device):
    """Integer-valued floats sum exactly, so every layout must give the identical answer."""
    x = torch.randint(-50, 50, (3, 8, 37, 41), dtype=torch.float32, device=device)
    expected = x.double().sum(dim=(2, 3)).float()
    for layout in ("contiguous", "channels_last", "offset", "sliced"):
        assert torch.equal(fusedlse_cuda.sum_hw(lay_out(x, layout)), expected), layout


# Planes shorter than, equal to and not a multiple of a 16-byte vector; channel counts that are and are not.
BROADCAST_SHAPES = [(2, 3, 8, 8), (3, 5, 7, 3), (2, 3, 1, 1), (2, 70, 1, 2), (4, 6, 5, 7), (3, 16, 9, 9),
                    (1, 1, 1, 3), (5, 8, 64, 64)]


@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
@pytest.mark.parametrize("shape", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_broadcast_hw_writes_every_element(device, dtype, shape, channels_last):
    """Exactly rows.to(dtype) at every (h, w), in the layout asked for: each value rounded once, none missed."""
    batch, channels, height, width = shape
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    rows = torch.randn(batch, channels, generator=torch.Generator().manual_seed(2), dtype=acc).to(device) * 100
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    poison_allocator(device)
    out = fusedlse_cuda.broadcast_hw(rows, height, width, dtype, memory_format)
    assert out.shape == shape and out.dtype == dtype and out.device == rows.device
    assert out.is_contiguous(memory_format=memory_format)
    assert torch.equal(out, rows.to(dtype)[:, :, None, None].expand(shape))


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
def test_broadcast_hw_past_32_bit_indices():
    """2^31 + 2^19 elements: the kernel's 64-bit index path, up to the last element."""
    height, width = 1 << 15, (1 << 15) + 8
    rows = torch.tensor([[1.5, -2.25]], device="cuda")
    out = fusedlse_cuda.broadcast_hw(rows, height, width, torch.bfloat16)
    for c in range(2):
        plane = out[0, c]
        assert plane.amin().item() == plane.amax().item() == rows[0, c].item()
    del out
    torch.cuda.empty_cache()
