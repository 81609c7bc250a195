"""padding and groups (issue 16): every nn.ConvTranspose2d setting against the float64 real model, forward and
gradients, on every dtype and layout; the per-tap sums against their definition; their adjoint; the module."""
import contextlib
import itertools
import random

import pytest
import torch

import fusedlse_cuda
from fusedlse_cuda import reference
from fusedlse_cuda.shape import conv_settings
from helpers import (DEVICES, DTYPES, HAS_CUDA, STRIDED_VIEWS, TOLERANCE, lay_out, make_problem, poison_allocator,
                     rel_err, strided_view)

CASES = 520


def random_case(rng: random.Random):
    """A problem and settings nn.ConvTranspose2d accepts: groups dividing C_in and C_out, output_padding below
    stride or dilation, padding up to cropping all but one row or column (so often more than a border of one)."""
    groups = rng.choice([1, 1, 2, 3, 4])
    c_in, per_group_out = groups * rng.randint(1, 3), rng.randint(1, 4)
    kernel = (rng.randint(1, 5), rng.randint(1, 5))
    # On CUDA: planes of at most 64 elements take the small-plane kernel (kernels.h kSmallPlaneElements), larger
    # ones the tap kernels (rows of 1-12 elements: vectors across several rows; ATen's path where such narrow rows
    # have gaps wider than a quarter of a row, as the "sliced" layout's of under 8 elements do).
    size = (rng.randint(1, 12), rng.choice([rng.randint(1, 12), rng.randint(16, 40)]))
    stride = (rng.randint(1, 3), rng.randint(1, 3))
    dilation = (rng.randint(1, 3), rng.randint(1, 3))
    output_padding = tuple(rng.randint(0, max(s, d) - 1) for s, d in zip(stride, dilation))
    full = [(n - 1) * s + d * (k - 1) + o + 1 for n, s, d, k, o in zip(size, stride, dilation, kernel, output_padding)]
    # Half the cases a padding of 1..3 (the common ones), half anything up to the largest allowed.
    padding = tuple(rng.randint(0, min(3, (f - 1) // 2)) if rng.random() < 0.5 else rng.randint(0, (f - 1) // 2)
                    for f in full)
    settings = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=groups)
    shape = (rng.randint(1, 4), c_in, size[0], size[1], per_group_out, kernel[0], kernel[1])
    return shape, settings


def grouped_problem(shape, settings, dtype, device, layout, seed):
    batch, c_in, height, width, per_group_out, kh, kw = shape
    c_out = per_group_out * settings["groups"]
    x, weight, conv_bias, bias = make_problem(batch, c_in, height, width, c_out, kh, kw, dtype=dtype, device=device,
                                              layout=layout, seed=seed)
    return x, weight[:, :per_group_out].contiguous(), conv_bias, bias


@pytest.mark.parametrize("device", DEVICES)
def test_random_settings_match_the_model(device):
    """CASES random problems: every dtype, layout and setting combination against the float64 real model; every
    fifth one's gradients too."""
    rng = random.Random(16)
    layouts = ["contiguous", "channels_last", "sliced"]
    for case in range(CASES):
        shape, settings = random_case(rng)
        dtype, layout = DTYPES[case % len(DTYPES)], layouts[case // len(DTYPES) % len(layouts)]
        x, weight, conv_bias, bias = grouped_problem(shape, settings, dtype, device, layout, seed=case)
        if case % 5 == 0:
            x, weight, conv_bias, bias = (t.requires_grad_() for t in (x, weight, conv_bias, bias))
        poison_allocator(device)
        out = fusedlse_cuda.forward(x, weight, conv_bias, bias, **settings)
        what = f"case {case}: shape {shape}, {settings}, {dtype}, {layout}"
        assert out.shape == (shape[0], 1) and out.dtype == dtype, what
        assert rel_err(out, reference.truth(x, weight, conv_bias, bias, **settings)) <= TOLERANCE[dtype], what
        if case % 5 == 0:
            grad_out = torch.randn(shape[0], 1, generator=torch.Generator().manual_seed(case)).to(device, dtype)
            grads = torch.autograd.grad(out, [x, weight, conv_bias, bias], grad_out)
            f64 = [t.detach().to("cpu", torch.float64).requires_grad_() for t in (x, weight, conv_bias, bias)]
            expected = torch.autograd.grad(reference.model_forward(*f64, **settings), f64,
                                           grad_out.to("cpu", torch.float64))
            for name, got, want in zip(["x", "weight", "conv_bias", "bias"], grads, expected):
                assert got.dtype == dtype and got.shape == want.shape, (name, what)
                assert rel_err(got, want) <= 4 * TOLERANCE[dtype], (name, what)


def test_tap_shortcut_is_the_model():
    """reference.tap_shortcut (the benchmarks' plain-torch rival where padding or groups apply, and in float64 their
    check on x too large for the model on the CPU) against the real model in float64: the random cases' settings and
    layouts, each padding's kept rectangles included."""
    rng = random.Random(16)
    layouts = ["contiguous", "channels_last", "sliced"]
    for case in range(CASES):
        shape, settings = random_case(rng)
        x, weight, conv_bias, bias = grouped_problem(shape, settings, torch.float64, "cpu", layouts[case % 3], case)
        got = reference.tap_shortcut(x, weight, conv_bias, bias, **settings)
        assert got.shape == (shape[0], 1)
        what = f"case {case}: shape {shape}, {settings}"
        assert rel_err(got, reference.truth(x, weight, conv_bias, bias, **settings)) <= 1e-12, what


@pytest.mark.parametrize("case", range(8))
@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_float64(device, case):
    rng = random.Random(1600 + case)
    shape, settings = random_case(rng)
    shape = (2,) + shape[1:]
    inputs = [t.requires_grad_() for t in grouped_problem(shape, settings, torch.float64, device, "contiguous", case)]
    fn = lambda *args: fusedlse_cuda.forward(*args, **settings)  # noqa: E731
    assert torch.autograd.gradcheck(fn, inputs)
    if case == 0:
        assert torch.autograd.gradgradcheck(fn, inputs)


def one_tap_truth(x, kernel, settings):
    """tap_sums by its definition, in float64 on the CPU: [b, c, t_h, t_w] is the sum over the cropped output of
    the transposed convolution of plane (b, c) whose kernel is 1 at (t_h, t_w) alone."""
    batch, c_in = x.shape[:2]
    kh, kw = kernel
    one_hot = torch.eye(kh * kw, dtype=torch.float64).reshape(kh * kw, kh, kw)
    # Every input channel to its own kh * kw output channels, one per tap.
    weight = torch.zeros(c_in, c_in * kh * kw, kh, kw, dtype=torch.float64)
    for c in range(c_in):
        weight[c, c * kh * kw:(c + 1) * kh * kw] = one_hot
    # Differentiable in x (its adjoint is broadcast_taps' definition).
    conv = torch.nn.functional.conv_transpose2d(x.to("cpu", torch.float64), weight, **settings)
    return conv.sum(dim=(2, 3)).reshape(batch, c_in, kh, kw)


@pytest.mark.parametrize("device", DEVICES)
def test_tap_sums_are_the_model_with_one_tap(device):
    """tap_sums against its definition (one_tap_truth); broadcast_taps is its adjoint."""
    rng = random.Random(7)
    for case in range(60):
        (batch, c_in, height, width, _, kh, kw), settings = random_case(rng)
        settings.pop("groups")
        x = make_problem(batch, c_in, height, width, 1, 1, 1, dtype=torch.float64, device=device,
                         layout=["contiguous", "channels_last", "sliced"][case % 3], seed=case)[0]
        taps = fusedlse_cuda.tap_sums(x, (kh, kw), **settings)
        want = one_tap_truth(x, (kh, kw), settings)
        assert rel_err(taps, want) <= TOLERANCE[torch.float64], (case, settings)
        grad = torch.randn(taps.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(case)).to(device)
        spread = fusedlse_cuda.broadcast_taps(grad, height, width, torch.float64, **settings)
        assert spread.shape == x.shape
        assert abs(float((taps * grad).sum() - (x * spread).sum())) <= 1e-9 * float(taps.abs().sum() + 1)


def assert_tap_sums_keep_infinities_apart(x, kernel, settings, infinities):
    """tap_sums of x with the infinities {index: value} written into it against one_tap_truth: each infinity reaches
    exactly the taps that keep its element (cropped from some, kept by others), every other tap is finite and
    matches its definition."""
    for index, value in infinities.items():
        x[index] = value
    poison_allocator(x.device.type)
    got = fusedlse_cuda.tap_sums(x, kernel, **settings).to("cpu", torch.float64)
    what = (settings, x.shape, x.stride(), x.dtype)
    kept = torch.zeros(got.shape, dtype=torch.bool)
    for index, value in infinities.items():
        alone = torch.zeros(x.shape, dtype=torch.float64)
        alone[index] = 1.0
        keeps = one_tap_truth(alone, kernel, settings) != 0
        assert keeps.any() and not keeps.all(), what  # the case crops it from some taps, not all
        assert (got[keeps] == value).all(), what
        kept |= keeps
    assert torch.isfinite(got[~kept]).all(), what
    finite = x.detach().to("cpu", torch.float64)
    for index in infinities:
        finite[index] = 0.0
    want = one_tap_truth(finite, kernel, settings)
    got[kept] = want[kept] = 0.0
    assert rel_err(got, want) <= TOLERANCE[x.dtype], what


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_tap_sums_for_every_border_width(device, dtype):
    """Borders of 1 to 8 columns, alike at both ends or not (stride 2 with output_padding), on rows of whole 16-byte
    vectors (48, and 48 of 56: whole vectors with gaps between them), rows that are not (45, 17: vectors across rows),
    rows with narrow gaps between them (45 of 48) and wide ones (17 of 48: a load per element), the border columns
    taken from the loads of the middle (registers up to 2 a side, and 3 on rows of whole vectors; shared memory
    beyond); +inf in a first column and -inf in a last each reach only the taps that keep it, in middle rows and in
    border rows (their second and second-last columns: a border column or a middle one of a vector with both)."""
    kernel = (3, 9)
    rows_of = [(48, 48), (48, 56), (45, 45), (17, 17), (45, 48), (17, 48)]  # (W, the row stride)
    for pad, (width, stride_h) in itertools.product(range(1, 9), rows_of):
        for stride, output_padding in ((1, 0), (2, 1)):
            settings = dict(stride=(1, stride), padding=(1, pad), output_padding=(0, output_padding))
            x = make_problem(2, 3, 20, stride_h, 1, 1, 1, dtype=dtype, device=device, seed=pad)[0][..., :width]
            infinities = {(0, 1, 5, 0): float("inf"), (1, 2, 7, width - 1): float("-inf"),
                          (1, 0, 0, 1): float("inf"), (0, 0, 19, width - 2): float("-inf")}
            assert_tap_sums_keep_infinities_apart(x, kernel, settings, infinities)


def vectors_save_loads(x):
    """Whether the 16-byte vectors spanning each of x's planes (rows contiguous, narrow gaps, planes a whole number of
    vectors apart) number at most half its elements (whole contiguous planes) or a quarter (a lead or gaps)."""
    _, _, height, width = x.shape
    per_vector = 16 // x.element_size()
    row_stride = x.stride(2) if height > 1 else width
    lead = x.data_ptr() % 16 // x.element_size()
    vectors = -(-(lead + (height - 1) * row_stride + width) // per_vector)
    gapless = lead == 0 and row_stride == width
    return vectors * per_vector <= 64 and (2 if gapless else 4) * vectors <= height * width


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_small_planes_by_vectors_across_row_gaps(device, dtype):
    """Small planes (a thread per plane) whose rows are contiguous with gaps of under a DRAM sector between them, loaded
    (CUDA) as the aligned 16-byte vectors around each plane (explain's plane_loads "vectors" where they number at most
    half the plane's elements for whole contiguous planes, a quarter across a lead or gaps: vectors_save_loads):
    planes starting anywhere in a vector, rows of 1 to 7 elements, a single row, spans of 1 to 14 vectors, more planes
    than a block's threads. Every element of the backing outside the planes (the gaps, the columns and rows sliced
    off) is NaN, so one added would show. Against the taps' definition, and (CUDA) bitwise the same as the planes
    copied contiguous; explain names element loads where the gaps reach a sector, the planes do not all start alike
    in a vector, or the vectors save too few loads."""
    # (H, W) of a plane cut at (row, column) from planes of (rows, row stride) in the backing, whose planes are a whole
    # number of 16-byte vectors apart in every dtype (rows * row stride a multiple of 8).
    cases = [((3, 6), (1, 2), (4, 8)),  # the sweep's sliced H/W (r26's planes)
             ((4, 5), (0, 1), (5, 8)), ((2, 7), (0, 1), (2, 8)), ((1, 6), (0, 0), (1, 8)), ((1, 5), (0, 3), (1, 8)),
             ((5, 3), (1, 1), (6, 4)), ((7, 7), (0, 1), (8, 8)), ((2, 3), (0, 0), (2, 4))]
    kernel, settings = (3, 3), dict(padding=1)
    by_vectors = 0  # the cases explain says load vectors: the vector path must run in every dtype
    for (height, width), (row, column), (rows, row_stride) in cases:
        backing = torch.full((7, 50, rows, row_stride), float("nan"), dtype=dtype, device=device)
        x = backing[:, :, row:row + height, column:column + width]
        x.copy_(make_problem(7, 50, height, width, 1, 1, 1, dtype=dtype, device=device, seed=height * 8 + width)[0])
        what = (height, width, row, column, rows, row_stride)
        poison_allocator(device)
        got = fusedlse_cuda.tap_sums(x, kernel, **settings)
        want = one_tap_truth(x, kernel, settings)
        assert rel_err(got.to("cpu", torch.float64), want) <= TOLERANCE[dtype], what
        if device == "cuda":
            loads = fusedlse_cuda.explain(x, torch.ones(50, 1, *kernel, dtype=dtype, device=device),
                                          **settings)["plane_loads"]
            assert loads == ("vectors" if vectors_save_loads(x) else "elements"), what
            by_vectors += loads == "vectors"
            assert torch.equal(got, fusedlse_cuda.tap_sums(x.contiguous(), kernel, **settings)), what
    if device == "cuda":
        assert by_vectors >= 1, dtype
        weight = torch.ones(3, 1, *kernel, dtype=dtype, device=device)
        wide_gaps = torch.zeros(7, 3, 3, 40, dtype=dtype, device=device)[..., :2]  # rows 40 apart: 76+ bytes
        misaligned = torch.zeros(7, 3, 3, 5, dtype=dtype, device=device)  # planes 15 elements apart
        for unlike in (wide_gaps, misaligned):
            assert fusedlse_cuda.explain(unlike, weight, **settings)["plane_loads"] == "elements", unlike.stride()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_long_border_rows_by_pieces(device, dtype):
    """Border rows whose middle is longer than a trip of the warp (CUDA's rows walk, kernels/read_tap_rows.cuh
    tap_run), a last one alone in its group read by pieces: runs of a row each (every border row alone), of whole
    planes (the head and tail rows together; stride 2 with output_padding: counts unalike) and the rule's; rows at
    every offset from a 16-byte boundary. A single 1 a plane, in a head or tail row, at the middle's first and last
    columns, either side of its pieces' boundary and in the border columns: each tap's sum exactly the model's count
    of it (a column taken twice gives 2, one missed 0)."""
    from fusedlse_cuda.planning import forced_tap_min_run_bytes

    kernel = (5, 3)
    cases = [dict(padding=(1, 1)), dict(padding=(3, 1)), dict(stride=(2, 1), padding=(2, 1), output_padding=(1, 0))]
    for (width, row_stride), settings in itertools.product([(1000, 1003), (301, 303)], cases):
        height, batch, channels = 9, 2, 7
        # Planes one element past a 16-byte boundary, rows an odd number of elements apart: rows at every offset.
        x = torch.zeros(batch, channels, height, row_stride, dtype=dtype, device=device)[..., 1:width + 1]
        middle_first, middle_end = 1, width - 1  # kW 3, padding 1 along W: a border column a side
        boundary = middle_first + (middle_end - middle_first) // 2
        columns = [middle_first, boundary - 1, boundary, boundary + 1, middle_end - 1, 0, width - 1]
        for plane in range(batch * channels):
            row = 0 if plane % 2 == 0 else height - 1
            x[plane // channels, plane % channels, row, columns[plane % len(columns)]] = 1.0
        want = one_tap_truth(x, kernel, settings)
        for run_bytes in (0, 2**40, None) if device == "cuda" else (None,):
            with forced_tap_min_run_bytes(run_bytes) if run_bytes is not None else contextlib.nullcontext():
                poison_allocator(device)
                got = fusedlse_cuda.tap_sums(x, kernel, **settings).to("cpu", torch.float64)
            assert torch.equal(got, want), (width, row_stride, settings, dtype, run_bytes, (got - want).abs().max())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cpu_cell_loop_pieces_and_runs(dtype):
    """The CPU backend's loop over planes with contiguous rows (csrc/cpu add_cells_of_planes): 16-bit x widened in
    the loop; rows of 5 and 3 elements 12 and 21 at a time side by side (contiguous planes as one run, rows with gaps
    one by one), a middle segment of 2998 rows past a lane's flush of 128 rows (2688 rows of 3, 1536 of 5) with rows
    left over; middle column runs under 8 elements, of 43 (8 vectors a step, then whole vectors, then the rest) and
    of 7998 (past run_sum's flush at 4096); a contiguous plane with no column cut as runs of 2998 rows (pieces of
    1024 values); a column of values 3 apart by 8 chains (1498 rows: a flush at 1024, 2 left over); infinities as
    test_tap_sums_for_every_border_width's."""
    cases = [((1000, 40, 6, 5), 5, 1), ((4, 3, 7, 47), 50, 2), ((3, 2, 1, 8000), 8000, 1), ((2, 3, 3000, 3), 3, 1),
             ((2, 3, 3000, 3), 3, 0), ((2, 3, 2000, 5), 7, 1), ((2, 3, 1500, 1), 3, 0)]
    for (batch, channels, height, width), row_stride, pad in cases:
        x = make_problem(batch, channels, height, row_stride, 1, 1, 1, dtype=dtype, seed=width)[0][..., :width]
        infinities = {(0, 1, 0, 0): float("inf"), (batch - 1, channels - 1, height - 1, width - 1): float("-inf")}
        assert_tap_sums_keep_infinities_apart(x, (3, 3), dict(padding=(1, pad)), infinities)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cpu_channel_loop_flushes(dtype):
    """The CPU backend's loop over the pixels of x whose channels are contiguous (csrc/cpu add_cells_of_channels): a
    row's middle of 298 pixels past a lane's flush at 128, two blocks of channels (300: 256 + 44); infinities as
    test_tap_sums_for_every_border_width's."""
    x = make_problem(2, 300, 3, 300, 1, 1, 1, dtype=dtype, layout="channels_last", seed=3)[0]
    infinities = {(0, 1, 0, 0): float("inf"), (1, 299, 2, 299): float("-inf")}
    assert_tap_sums_keep_infinities_apart(x, (3, 3), dict(padding=(1, 1)), infinities)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_tap_sums_on_narrow_rows(device, dtype):
    """Rows of 1 to 15 elements (planes of more than 64, past the small-plane kernel): contiguous planes (16-byte
    vectors across several rows), rows with narrow gaps (the same walk over the gaps) and wide ones (ATen's path on
    CUDA), borders of 1 to 4 columns (registers and shared memory), W = 1 with any stride along W; infinities as
    test_tap_sums_for_every_border_width's."""
    kernel = (3, 9)
    for width, gap, pad in itertools.product((1, 2, 3, 5, 8, 12, 15), (0, 1, 19), (1, 2, 4)):
        if gap == 1 and width < 4:
            continue  # a gap over a quarter of W: the same as the wide gap
        height = max(9, 64 // width + 2)
        settings = dict(padding=(1, pad))
        x = make_problem(2, 3, height, width + gap, 1, 1, 1, dtype=dtype, device=device, seed=width)[0][..., :width]
        infinities = {(0, 1, 5, 0): float("inf"), (1, 2, 7, width - 1): float("-inf")}
        assert_tap_sums_keep_infinities_apart(x, kernel, settings, infinities)
        if width == 1:
            across = x.transpose(2, 3).contiguous().transpose(2, 3)  # W's stride H, not 1
            assert_tap_sums_keep_infinities_apart(across, kernel, settings, infinities)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_tap_sums_on_contiguous_channels(device, dtype):
    """x whose channels are its contiguous dimension (the channels walk): channels_last and a slice of its channels,
    C from 2 to 70 (several positions per warp where C is small, slices of channels where it is over 32), rows of 1
    to 40 positions, borders of 1 to 8 columns at one end or both (registers and shared memory); infinities as
    test_tap_sums_for_every_border_width's."""
    kernel = (3, 9)
    shapes = [(2, 12, 40), (3, 20, 5), (9, 70, 1), (33, 9, 17), (70, 8, 12)]  # (C, H, W)
    for (channels, height, width), pad, sliced in itertools.product(shapes, (1, 2, 3, 8), (False, True)):
        for stride, output_padding in ((1, 0), (2, 1)):
            full = (width - 1) * stride + kernel[1] + output_padding
            settings = dict(stride=(1, stride), padding=(1, min(pad, (full - 1) // 2)),
                            output_padding=(0, output_padding))
            x = make_problem(2, channels + 2 * sliced, height, width, 1, 1, 1, dtype=dtype, device=device,
                             layout="channels_last", seed=channels)[0]
            if sliced:
                x = x[:, 1:channels + 1]
            assert x.stride(1) == 1
            infinities = {(0, 1, 5, 0): float("inf"), (1, channels - 1, 7, width - 1): float("-inf")}
            assert_tap_sums_keep_infinities_apart(x, kernel, settings, infinities)


def runs_of_many_rows_cases():
    """(batch, channels, height, width, layout, gap) of test_tap_sums_over_runs_of_many_rows."""
    rows = [(1024, 3, 96, width, "rows", gap) for width, gap in ((1, 0), (5, 0), (12, 0), (40, 0), (40, 4), (40, 60))]
    channels = [(1024, 3, 96, 5), (1024, 3, 96, 40), (1024, 3, 160, 1), (256, 40, 256, 5)]
    return rows + [(b, c, h, w, "channels_last", 0) for b, c, h, w in channels]


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_tap_sums_over_runs_of_many_rows(dtype):
    """Enough planes (or batches of channel slices) that the tap kernels cut each plane into runs of several rows:
    they aim at 8 runs per resident warp, some 34 thousand on an H200, so the other tests' few planes take a row a
    run. Against the CPU's tap sums of the same values in float64: rows of 1, 5, 12 and 40 elements walked by 16-byte
    vectors across rows, rows of 40 with NaN-filled gaps of 4 (loaded, never added) and of 60 (a load per element),
    and contiguous channels (3: eight positions at once, a step crossing rows where W is 1 or 5; 40: two slices)."""
    kernel, settings = (3, 5), dict(padding=(1, 2))
    for batch, channels, height, width, layout, gap in runs_of_many_rows_cases():
        values = make_problem(batch, channels, height, width, 1, 1, 1, dtype=dtype, seed=width)[0]
        if layout == "channels_last":
            x = values.to("cuda").contiguous(memory_format=torch.channels_last)
        else:
            rows = torch.full((batch, channels, height, width + gap), float("nan"), dtype=dtype, device="cuda")
            x = rows[..., :width]
            x.copy_(values)
        poison_allocator("cuda")
        got = fusedlse_cuda.tap_sums(x, kernel, **settings)
        want = fusedlse_cuda.tap_sums(values.double(), kernel, **settings)
        what = (batch, channels, height, width, layout, gap, dtype)
        assert torch.isfinite(got).all(), what
        assert rel_err(got, want) <= TOLERANCE[dtype], what


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_broadcast_taps_writes_every_element_once_in_the_layout_asked(device, dtype):
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    taps = torch.randn(3, 4, 3, 2, generator=torch.Generator().manual_seed(0)).to(device, acc)
    crop = dict(stride=(2, 1), padding=(2, 1), output_padding=(1, 0), dilation=(1, 2))
    want = fusedlse_cuda.broadcast_taps(taps.to("cpu", torch.float64), 7, 6, torch.float64, **crop)
    for memory_format in (torch.contiguous_format, torch.channels_last):
        poison_allocator(device)
        got = fusedlse_cuda.broadcast_taps(taps, 7, 6, dtype, memory_format=memory_format, **crop)
        assert got.dtype == dtype and got.is_contiguous(memory_format=memory_format)
        assert torch.isfinite(got).all()
        assert rel_err(got, want) <= TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_broadcast_taps_for_every_border_width(device, dtype):
    """grad_x's write with padding against the adjoint of one_tap_truth (torch's autograd through the model's own
    transposed convolution): borders of 1 to 8 rows and columns, alike at both ends or not; rows of whole 16-byte
    vectors (48) and not (45, 17: vectors across rows and planes), rows of 32 vectors and more (256, 264: a warp per
    row where borders fit in a vector, the row's last vector on lane 31, 1 or 3; 264 bfloat16 and float16 rows are 33
    vectors, which take the flat walk); planes with a middle and without (3 x 5, 1 x 64); channels a whole number of
    vectors (8) and not (3), both layouts."""
    kernel = (3, 9)
    sizes = [(20, 48), (9, 45), (5, 17), (3, 5), (1, 64), (6, 256), (4, 264)]
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    for pad, (height, width), (batch, channels) in itertools.product((1, 2, 3, 5, 8), sizes, ((2, 3), (1, 8))):
        for stride, output_padding in ((1, 0), (2, 1)):
            full = (height - 1 + kernel[0], (width - 1) * stride + kernel[1] + output_padding)  # uncropped output
            padding = (min(pad, 2, (full[0] - 1) // 2), min(pad, (full[1] - 1) // 2))
            settings = dict(stride=(1, stride), padding=padding, output_padding=(0, output_padding))
            x = torch.zeros(batch, channels, height, width, dtype=torch.float64, requires_grad=True)
            taps = one_tap_truth(x, kernel, settings)
            grad = torch.randn(taps.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(pad))
            (want,) = torch.autograd.grad(taps, x, grad)
            for memory_format in (torch.contiguous_format, torch.channels_last):
                poison_allocator(device)
                got = fusedlse_cuda.broadcast_taps(grad.to(device, acc), height, width, dtype,
                                                   memory_format=memory_format, **settings)
                what = (settings, (height, width), (batch, channels), memory_format, dtype)
                assert got.dtype == dtype and got.is_contiguous(memory_format=memory_format), what
                assert rel_err(got, want) <= TOLERANCE[dtype], what


@pytest.mark.parametrize("device", DEVICES)
def test_infinity_in_a_cropped_border_reaches_only_the_taps_that_keep_it(device):
    x, weight, conv_bias, bias = make_problem(2, 3, 6, 5, 4, 3, 3, dtype=torch.float64, device=device)
    weight = weight.abs()  # every product of the infinity has one sign: the model's mean is +inf, not NaN
    x[0, 1, 0, 0] = float("inf")
    settings = dict(padding=(2, 1))
    out = fusedlse_cuda.forward(x, weight, conv_bias, bias, **settings)
    truth = reference.truth(x, weight, conv_bias, bias, **settings)
    assert torch.isinf(truth[0]).all() and torch.isfinite(truth[1]).all()
    assert torch.equal(out[0].cpu(), truth[0]) and rel_err(out[1], truth[1]) <= TOLERANCE[torch.float64]
    # Padding that crops the infinity from every tap: a finite answer, as the model's.
    x[0, 1, 0, 0], x[0, 1, 5, 4] = 0.0, float("inf")
    settings = dict(padding=(3, 3))  # full output 8 x 7: rows 3..4 and column 3 survive; x's last row never lands
    truth = reference.truth(x, weight, conv_bias, bias, **settings)
    assert torch.isfinite(truth).all()
    assert rel_err(fusedlse_cuda.forward(x, weight, conv_bias, bias, **settings), truth) <= TOLERANCE[torch.float64]


@pytest.mark.parametrize("bias_shape", [(6, 1, 1), (6,)], ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_module_with_padding_and_groups(device, bias_shape):
    """ModelNew against Model, same seed, for grouped and padded convolutions; (6,) takes the broadcast-bias
    path."""
    for settings in (dict(groups=2), dict(groups=2, padding=(1, 2)), dict(groups=3, padding=1, stride=2)):
        torch.manual_seed(0)
        model = reference.Model(6, 6, 3, bias_shape, **settings).to(device)
        torch.manual_seed(0)
        new = fusedlse_cuda.ModelNew(6, 6, 3, bias_shape, **settings).to(device)
        x = make_problem(3, 6, 7, 8, 1, 1, 1, device=device)[0]
        truth = reference.truth(x, model.conv_transpose.weight, model.conv_transpose.bias, model.bias, **settings)
        assert rel_err(new(x), truth) <= TOLERANCE[torch.float32], settings
        from_model = fusedlse_cuda.ModelNew.from_model(model)
        assert rel_err(from_model(x), truth) <= TOLERANCE[torch.float32], settings


@pytest.mark.parametrize("device", DEVICES)
def test_padding_and_groups_under_torch_compile_and_forward_mode(device):
    x, weight, conv_bias, bias = make_problem(2, 4, 6, 5, 6, 3, 2, device=device)
    weight = weight[:, :3].contiguous()
    settings = dict(stride=(2, 1), padding=(1, 2), groups=2)
    eager = fusedlse_cuda.forward(x, weight, conv_bias, bias, **settings)
    assert rel_err(eager, reference.truth(x, weight, conv_bias, bias, **settings)) <= TOLERANCE[torch.float32]
    compiled = torch.compile(lambda *a: fusedlse_cuda.forward(*a, **settings), fullgraph=True, backend="aot_eager")
    assert rel_err(compiled(x, weight, conv_bias, bias), eager) <= TOLERANCE[torch.float32]
    # Forward mode: the composite of torch ops, against a finite difference of the op itself.
    tangent = torch.randn(x.shape, generator=torch.Generator().manual_seed(3)).to(device)
    primal, jvp = torch.func.jvp(lambda t: fusedlse_cuda.forward(t, weight, conv_bias, bias, **settings), (x,),
                                 (tangent,))
    assert rel_err(primal, eager) <= TOLERANCE[torch.float32]
    x64, w64, cb64, b64 = (t.double() for t in (x, weight, conv_bias, bias))
    step = 1e-6
    difference = (fusedlse_cuda.forward(x64 + step * tangent.double(), w64, cb64, b64, **settings) -
                  fusedlse_cuda.forward(x64 - step * tangent.double(), w64, cb64, b64, **settings)) / (2 * step)
    assert rel_err(jvp, difference) <= 1e-4


def test_tap_sums_arguments_are_checked():
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(RuntimeError, match=r"kernel_size must be a pair of positive ints \(kH, kW\), got \[0, 2\]"):
        torch.ops.fusedlse.tap_sums(x, [0, 2])
    with pytest.raises(RuntimeError, match=r"padding \[3, 3\] crops the whole output: H_out = 6 - 2 \* 3"):
        fusedlse_cuda.tap_sums(x, 3, padding=3)
    with pytest.raises(RuntimeError, match=r"taps must have dtype Float \(the accumulation type of BFloat16\), "
                                           r"got Double"):
        fusedlse_cuda.broadcast_taps(torch.randn(2, 3, 3, 3, dtype=torch.float64), 4, 4, torch.bfloat16)


def test_explain_checks_the_settings_as_forward_does():
    x, weight = torch.randn(2, 3, 5, 5), torch.randn(3, 4, 3, 3)
    assert fusedlse_cuda.explain(x, weight, padding=1, groups=3)["strategy"] == "cpu"
    with pytest.raises(RuntimeError, match=r"x's C_in = 3 must be divisible by groups = 2"):
        fusedlse_cuda.explain(x, weight, groups=2)
    with pytest.raises(RuntimeError, match=r"padding \[4, 4\] crops the whole output"):
        fusedlse_cuda.explain(x, weight, padding=4)


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c_out,gemm", [(3, "tap_shares"), (96, "planned")])
def test_both_cropped_gemms_match_the_model(dtype, c_out, gemm):
    """The cropped GEMM by the tap kernels' shares (few output channels beside x) and as a planned padding-0
    forward (many), each against the float64 model, with a conv bias and a per-channel bias."""
    x, weight, conv_bias, bias = make_problem(3, 5, 20, 48, c_out, 3, 4, dtype=dtype, device="cuda", seed=c_out)
    settings = dict(padding=(1, 2), stride=(2, 1))
    chosen = fusedlse_cuda.explain(x, weight, **settings)["gemm"]["strategy"]
    assert (chosen == "tap_shares") == (gemm == "tap_shares"), chosen
    poison_allocator("cuda")
    out = fusedlse_cuda.forward(x, weight, conv_bias, bias, **settings)
    assert out.dtype == dtype and rel_err(out, reference.truth(x, weight, conv_bias, bias, **settings)) <= \
        TOLERANCE[dtype]


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
@pytest.mark.parametrize("c_in,c_out,added", [(130, 128, "torch_sum"), (64, 128, "in_lse"), (3, 1, "in_lse"),
                                               (300, 5, "in_lse"), (200, 100, "torch_sum")])
def test_tap_shares_added_in_the_lse_launch_or_by_torch(c_in, c_out, added):
    """The tap kernels' shares added over the channels by the logsumexp's launch (a block per row, threads across
    columns and slices of the channels) or, where a block's threads would load too many, by torch's sum first;
    planes large enough beside the weight for the shares to apply."""
    x, weight, conv_bias, bias = make_problem(2, c_in, 36, 136, c_out, 3, 3, device="cuda", seed=c_in)
    gemm = fusedlse_cuda.explain(x, weight, padding=1)["gemm"]
    assert gemm == {"strategy": "tap_shares", "shares_added": added}
    poison_allocator("cuda")
    out = fusedlse_cuda.forward(x, weight, conv_bias, bias, padding=1)
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias, padding=1)) <= TOLERANCE[torch.float32]


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
@pytest.mark.parametrize("shape,shares", [((2, 3, 400, 720, 100, 3, 3), True),   # 1 x 2 trips of weight loads
                                          ((2, 3, 400, 720, 600, 3, 3), False),  # 5 x 2 trips
                                          ((1700, 2, 40, 40, 4, 3, 3), False)])  # 3400 planes: past one round
def test_tap_shares_only_as_a_short_loop(shape, shares):
    """The tap kernels' shares where each combining warp's loop over its plane's columns and taps is short and the
    planes fit one round of those warps (plan::tap_shares_short), else the planner's epilogue over the taps or
    cells: each against the float64 model, and the forward without the per-tap sums bitwise the one with them."""
    x, weight, conv_bias, bias = make_problem(*shape, device="cuda", seed=shape[4])
    plan = fusedlse_cuda.explain(x, weight, padding=1)
    assert plan["tap_sums"] == "kernels" and (plan["gemm"]["strategy"] == "tap_shares") == shares, plan
    poison_allocator("cuda")
    args = (x, weight, conv_bias, bias) + tuple(conv_settings(padding=1).values())
    out = torch.ops.fusedlse.forward(*args, keep_sums=False)[0]
    assert rel_err(out, reference.truth(x, weight, conv_bias, bias, padding=1)) <= TOLERANCE[torch.float32]
    assert torch.equal(out, torch.ops.fusedlse.forward(*args, keep_sums=True)[0])


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
@pytest.mark.parametrize("shape,dtype,groups", [
    ((64, 64, 24, 24, 8, 3, 3), torch.float32, 1),     # 4096 planes: more than the combine's warps on an H200
    ((2, 3, 160, 160, 500, 3, 3), torch.float32, 1),   # 500 columns of 9 taps: too large a stage, read in place
    ((4, 8, 80, 144, 64, 3, 3), torch.bfloat16, 2),    # a group's 32 columns staged
    ((3, 6, 40, 72, 40, 2, 3), torch.float16, 1),      # 6 taps: an odd pitch of 7
    ((3, 6, 40, 72, 40, 3, 3), torch.float64, 1),      # float64: read in place
])
def test_tap_combine_stages_the_weight_or_reads_it(shape, dtype, groups):
    """The combining launch's shares from the weight staged in shared memory (its warp's first plane's before the
    wait for the reader, later planes' after it) or read where it lies: each against the float64 model, and the
    forward without the per-tap sums bitwise the forward with them. The shares forced: the rule keeps them to one
    round of the combining warps and few trips of weight loads, where 4096 planes and 500 columns are not."""
    from fusedlse_cuda.planning import forced_tap_shares

    batch, c_in, height, width, c_out, kh, kw = shape
    x, weight, conv_bias, bias = make_problem(batch, c_in, height, width, c_out, kh, kw, dtype=dtype, device="cuda",
                                              seed=c_out)
    weight = weight[:, :c_out // groups].contiguous()
    args = (x, weight, conv_bias, bias) + tuple(conv_settings(padding=1, groups=groups).values())
    with forced_tap_shares(True):
        plan = fusedlse_cuda.explain(x, weight, padding=1, groups=groups)
        assert plan["tap_sums"] == "kernels" and plan["gemm"]["strategy"] == "tap_shares", plan
        poison_allocator("cuda")
        out = torch.ops.fusedlse.forward(*args, keep_sums=False)[0]
        with_sums = torch.ops.fusedlse.forward(*args, keep_sums=True)[0]
    truth = reference.truth(x, weight, conv_bias, bias, padding=1, groups=groups)
    assert rel_err(out, truth) <= TOLERANCE[dtype]
    assert torch.equal(out, with_sums)


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
@pytest.mark.parametrize("many_planes", [True, False], ids=["many_planes", "few_planes"])
@pytest.mark.parametrize("shape,dtype,layout,padding", [
    ((6, 16, 40, 36, 24, 3, 3), torch.float32, "contiguous", 1),       # borders of 1 column in registers
    ((4, 12, 60, 50, 16, 3, 5), torch.bfloat16, "channels_last", 2),   # the channels walk
    ((3, 10, 44, 30, 12, 5, 5), torch.float64, "contiguous", 3),       # borders in shared memory (kSide 0)
    ((3, 6, 52, 28, 8, 5, 5), torch.float64, "contiguous", 2),         # borders of 2: a group lane's runs 2 a trip
    ((5, 8, 2, 640, 16, 3, 3), torch.float32, "contiguous", 1),        # no middle row
])
def test_tap_combines_give_the_same_sums(shape, dtype, layout, padding, many_planes):
    """The two combines of the tap kernels: a warp per plane where it makes the planes' shares of the GEMM (the
    shares forced on; explain's combine "warp_per_plane"), and without shares (forced off) groups of lanes where the
    planes are at least 32 a multiprocessor (twice the device's resident warps in planes: "lane_groups", 8 lanes a
    plane) or the GEMM runs over cells (the 2-row planes: 6 cells, 9 taps), else the warp per plane again. Runs of one
    row each (as many runs as the resident warps ask for), of 1 KiB and whole planes (a lane a plane where the planes
    are many); never the GEMM over x's elements, whose tap sums take the tap kernels without shares; then each of 1, 4
    and 32 lanes a plane forced. Both combines add the same cells in the same order, so the per-tap sums the forward
    keeps are bitwise the same, and the CPU's within the dtype's tolerance. Groups of 1 or 2 lanes without the cells
    asked (tap_sums, the GEMM over taps) keep the middle row's cells in registers, not in the grid
    (TapSumsArgs::own_taps). Groups of 4 or more lanes take several of a lane's runs a trip (add_runs: 4 with borders
    of one column, 2 with two), in add_run's order: few planes in runs of one row give 4 lanes 10-13 runs each, the
    last trip part-full."""
    from fusedlse_cuda.planning import (forced_element_gemm, forced_tap_combine_lanes, forced_tap_min_run_bytes,
                                        forced_tap_shares)

    batch, c_in, height, width, c_out, kh, kw = shape
    if many_planes:
        props = torch.cuda.get_device_properties(0)
        resident_warps = props.multi_processor_count * props.max_threads_per_multi_processor // 32
        batch = -(-2 * resident_warps // c_in)
    x, weight, conv_bias, bias = make_problem(batch, c_in, height, width, c_out, kh, kw, dtype=dtype, device="cuda",
                                              layout=layout, seed=padding)
    args = (x, weight, conv_bias, bias) + tuple(conv_settings(padding=padding).values())
    cpu_sums = torch.ops.fusedlse.forward(*(t.cpu() if isinstance(t, torch.Tensor) else t for t in args))[1]
    for run_bytes in (0, 1024, 2**40):
        sums = {}
        for shares in (True, False):
            with forced_tap_min_run_bytes(run_bytes), forced_tap_shares(shares), forced_element_gemm(False):
                plan = fusedlse_cuda.explain(x, weight, padding=padding)
                assert plan["tap_sums"] in ("kernels", "channel_kernels"), plan
                # the GEMM over cells asks for them: the group combine writes the middle row's into the grid
                groups = not shares and (many_planes or plan.get("gemm_over") == "cells")
                assert plan["combine"] == ("lane_groups" if groups else "warp_per_plane"), plan
                assert (plan["gemm"]["strategy"] == "tap_shares") == shares, plan
                poison_allocator("cuda")
                sums[shares] = torch.ops.fusedlse.forward(*args, keep_sums=True)[1]
        what = (batch, shape, dtype, layout, padding, run_bytes)
        assert torch.equal(sums[True], sums[False]), what
        for lanes in (1, 4, 32):  # each lane count forced: a warp a plane at 32 unless the cells are asked
            with forced_tap_min_run_bytes(run_bytes), forced_tap_shares(False), forced_element_gemm(False), \
                    forced_tap_combine_lanes(lanes):
                plan = fusedlse_cuda.explain(x, weight, padding=padding)
                groups = lanes < 32 or plan.get("gemm_over") == "cells"
                assert plan["combine"] == ("lane_groups" if groups else "warp_per_plane"), (plan, lanes)
                poison_allocator("cuda")
                forced_sums = torch.ops.fusedlse.forward(*args, keep_sums=True)[1]
                # tap_sums asks for no cells: at 1 lane a plane the middle row's cells in registers, at 4 in the grid
                poison_allocator("cuda")
                op_sums = fusedlse_cuda.tap_sums(x, (kh, kw), padding=padding)
            assert torch.equal(forced_sums, sums[True]), what + (lanes,)
            assert torch.equal(op_sums, sums[True]), what + (lanes, "tap_sums")
        assert rel_err(sums[False].cpu(), cpu_sums) <= TOLERANCE[dtype], what


@pytest.mark.parametrize("groups", [2, 3])
@pytest.mark.parametrize("padding", [0, 1, 3])
@pytest.mark.parametrize("plane", [32, 5], ids=["taps", "small_planes"])
def test_grouped_gemm_keeps_an_infinity_within_its_group_on_cpu(plane, padding, groups):
    """An infinity in one channel of group 0, on the CPU backend (each group's GEMM by its own block of the weight):
    +inf makes group 0's logits +inf and the answer +inf; -inf makes them -inf and the answer the other groups'
    finite logsumexp, the float64 model's. A product with the dense block-diagonal weight's zeros (0 x inf) made
    every logit NaN."""
    x, weight, conv_bias, bias = make_problem(2, 6, plane, plane, 6, 3, 3, dtype=torch.float64, seed=groups)
    weight = weight[:, :6 // groups].abs().contiguous()  # every product of the infinity has its sign
    for infinity in (float("inf"), float("-inf")):
        x_inf = x.clone()
        x_inf[0, 1, 2, 2] = infinity
        out = fusedlse_cuda.forward(x_inf, weight, conv_bias, bias, padding=padding, groups=groups)
        truth = reference.truth(x_inf, weight, conv_bias, bias, padding=padding, groups=groups)
        assert torch.isfinite(truth[1]).all() and torch.isfinite(out[1]).all()
        if infinity > 0:
            assert torch.isposinf(truth[0]).all() and torch.isposinf(out[0]).all(), out
        else:
            assert torch.isfinite(truth[0]).all(), truth
        finite = torch.isfinite(truth)
        assert rel_err(out[finite], truth[finite]) <= TOLERANCE[torch.float64]


@pytest.mark.parametrize("groups", [1, 4])
@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32, torch.float64], ids=str)
def test_cpu_logits_by_chunks_of_rows(dtype, padding, groups):
    """The CPU backend makes the [B, C_out] logits a chunk of rows at a time (at C_out 1024, chunks of 512 rows:
    1300 rows are three, the last partial). Every row's answer is the float64 model's, bitwise the same again, and
    +inf in a channel of group 0 of a row of the last chunk makes that row +inf and no other row anything but finite."""
    x, weight, conv_bias, bias = make_problem(1300, 8, 3, 2, 1024, 2, 2, dtype=dtype, seed=10 * padding + groups)
    weight = weight[:, :1024 // groups].abs().contiguous()  # every product of the infinity has its sign
    x[1250, 1, 1, 1] = float("inf")
    out = fusedlse_cuda.forward(x, weight, conv_bias, bias, padding=padding, groups=groups)
    assert torch.equal(out, fusedlse_cuda.forward(x, weight, conv_bias, bias, padding=padding, groups=groups))
    truth = reference.truth(x, weight, conv_bias, bias, padding=padding, groups=groups)
    finite = torch.ones(1300, 1, dtype=torch.bool)
    finite[1250] = False
    assert torch.isposinf(truth[1250]).all() and torch.isposinf(out[1250]).all()
    assert torch.isfinite(out[finite]).all()
    assert rel_err(out[finite], truth[finite]) <= TOLERANCE[dtype]


# Every GEMM that multiplies the dense block-diagonal W.sum or weight rows, (strategy, reader, epilogue) as
# planning.forced_plan takes them: padding 0's fused launch and split epilogues (those reading x's 1 x 1 planes
# themselves too), and the cropped GEMM's, planned where the tap kernels' shares are turned off.
GROUPED_GEMMS = [("fused", None, None), ("split", None, "tiled_lse"), ("split", None, "cublas_lse"),
                 ("split", None, "rows_lse"), ("split", None, "narrow_lse"), ("split", None, "gemv_lse"),
                 ("split", "in_epilogue", "tiled_lse"), ("split", "in_epilogue", "narrow_lse")]


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("gemm", GROUPED_GEMMS, ids=lambda g: "-".join(p for p in g if p))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32, torch.float64], ids=str)
def test_grouped_gemm_keeps_an_infinity_within_its_group_on_cuda(dtype, gemm, padding):
    """An infinity in one channel of group 0 on CUDA, through each GEMM over the dense block-diagonal weight (0 x inf
    is NaN there): +inf gives the model's +inf, -inf the other groups' finite logsumexp; NaN in x stays NaN. The
    other row is bitwise what it is without the infinity."""
    from fusedlse_cuda.planning import forced_plan, forced_tap_shares

    strategy, reader, epilogue = gemm
    if padding and reader is not None:
        pytest.skip("the cropped GEMM's rows are sums already: it has no reader to force")
    height, width = (1, 1) if reader == "in_epilogue" else (5, 6)
    x, weight, conv_bias, bias = make_problem(2, 4, height, width, 6, 3, 3, dtype=dtype, device="cuda", seed=3)
    weight = weight[:, :3].abs().contiguous()  # groups 2: C_out 6, every product of the infinity has its sign
    with forced_plan(strategy, reader, epilogue), forced_tap_shares(False):
        plan = fusedlse_cuda.explain(x, weight, padding=padding, groups=2)
        gemm_plan = plan["gemm"] if padding else plan
        assert gemm_plan["strategy"] == strategy, plan  # forcing falls back where a reader or epilogue cannot run
        clean = fusedlse_cuda.forward(x, weight, conv_bias, bias, padding=padding, groups=2)
        for value in (float("inf"), float("-inf"), float("nan")):
            x_odd = x.clone()
            x_odd[0, 1, 0, 0] = value
            poison_allocator("cuda")
            out = fusedlse_cuda.forward(x_odd, weight, conv_bias, bias, padding=padding, groups=2)
            truth = reference.truth(x_odd, weight, conv_bias, bias, padding=padding, groups=2)
            assert torch.equal(out[1], clean[1]), (value, out, clean)
            if value != value:
                assert torch.isnan(truth[0]).all() and torch.isnan(out[0]).all(), out
            elif value > 0:
                assert torch.isposinf(truth[0]).all() and torch.isposinf(out[0]).all(), out
            else:
                assert torch.isfinite(truth[0]).all() and torch.isfinite(out[0]).all(), out
                assert rel_err(out[0], truth[0]) <= TOLERANCE[dtype], (out, truth)


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)  # the weight staged, and read in place
@pytest.mark.parametrize("keep_sums", [False, True], ids=["shares", "with_sums"])
def test_tap_shares_keep_an_infinity_within_its_group(dtype, keep_sums):
    """+inf in a channel of group 0 makes group 0's logits +inf and leaves group 1's finite, so the model's answer is
    +inf: the combine's share of a channel for a column outside its group is 0, not the sum of 0 x inf (NaN)."""
    x, weight, conv_bias, bias = make_problem(2, 4, 64, 64, 6, 3, 3, dtype=dtype, device="cuda")
    weight = weight[:, :3].abs().contiguous()  # groups=2: C_out 6, every product of the infinity positive
    x[0, 1, 20, 30] = float("inf")
    plan = fusedlse_cuda.explain(x, weight, padding=1, groups=2)
    assert plan["tap_sums"] == "kernels" and plan["gemm"]["strategy"] == "tap_shares", plan
    args = (x, weight, conv_bias, bias) + tuple(conv_settings(padding=1, groups=2).values())
    out = torch.ops.fusedlse.forward(*args, keep_sums=keep_sums)[0]
    truth = reference.truth(x, weight, conv_bias, bias, padding=1, groups=2)
    assert torch.isposinf(truth[0]).all() and torch.isfinite(truth[1]).all()
    assert torch.isposinf(out[0]).all(), out
    assert rel_err(out[1], truth[1]) <= TOLERANCE[dtype]


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
def test_explain_names_the_cropped_path_and_the_ungrouped_plan():
    x = torch.randn(2, 4, 8, 32, device="cuda")
    weight = torch.randn(4, 3, 3, 3, device="cuda")
    plan = fusedlse_cuda.explain(x, weight, padding=1)
    assert (plan["strategy"], plan["tap_sums"], plan["groups"]) == ("cropped", "kernels", 1)
    # The GEMM over the per-tap sums: shares by the tap kernels where the weight rows they read are small beside x,
    # else planned as a padding-0 forward of [B, C_in * kH * kW] 1 x 1 planes.
    assert plan["gemm"] == {"strategy": "tap_shares", "shares_added": "in_lse"}
    wide = fusedlse_cuda.explain(x, torch.randn(4, 64, 3, 3, device="cuda"), padding=1)["gemm"]
    assert wide["strategy"] in ("fused", "split")
    assert (wide["problem"]["in_channels"], wide["problem"]["height"], wide["problem"]["out_channels"]) == (36, 1, 64)
    channels_last = x.contiguous(memory_format=torch.channels_last)
    assert fusedlse_cuda.explain(channels_last, weight, padding=1)["tap_sums"] == "channel_kernels"
    assert fusedlse_cuda.explain(x[..., :12].contiguous(), weight, padding=1)["tap_sums"] == "kernels"  # rows of 12
    tall = torch.randn(2, 4, 80, 32, device="cuda")
    assert fusedlse_cuda.explain(tall[..., :1].contiguous(), weight, padding=1)["tap_sums"] == "kernels"  # rows of 1
    # Rows of 12 and of 1, 32 apart: the element walk on narrow rows, slower than ATen's.
    assert fusedlse_cuda.explain(x[..., :12], weight, padding=1)["tap_sums"] == "aten"
    assert fusedlse_cuda.explain(tall[..., :1], weight, padding=1)["tap_sums"] == "aten"
    assert fusedlse_cuda.explain(x.permute(0, 3, 2, 1).contiguous().permute(0, 3, 2, 1), weight,
                                 padding=1)["tap_sums"] == "channel_kernels"  # C then H contiguous
    h_contiguous = torch.randn(2, 32, 4, 8, device="cuda").permute(0, 2, 3, 1)  # [2, 4, 8, 32], H's stride 1
    assert fusedlse_cuda.explain(h_contiguous, weight, padding=1)["tap_sums"] == "aten"
    assert fusedlse_cuda.explain(x[..., :8], weight, padding=1)["tap_sums"] == "small_planes"  # 64 elements
    # Cells of one element each (1 x 1 planes): the GEMM reads x; whole planes of several (no tap crops a row of 5
    # in part): the padding-0 readers' sums.
    ones = fusedlse_cuda.explain(torch.randn(4000, 4, 1, 1, device="cuda"), weight, padding=1)
    assert (ones["tap_sums"], ones["whole_planes"], ones["cells_in_x"], ones["gemm_over"]) == (
        "small_planes", False, True, "cells")
    whole = fusedlse_cuda.explain(torch.randn(4000, 4, 1, 5, device="cuda"), torch.randn(4, 3, 3, 1, device="cuda"),
                                  padding=(1, 0))
    assert (whole["tap_sums"], whole["whole_planes"], whole["cells_in_x"], whole["gemm_over"]) == (
        "small_planes", True, False, "cells")
    small = fusedlse_cuda.explain(x[..., :8], weight, padding=1)
    assert small["whole_planes"] is False and small["cells_in_x"] is False
    assert fusedlse_cuda.explain(x, weight, padding=(1, 9))["tap_sums"] == "aten"  # a tap loses 9 columns
    grouped = fusedlse_cuda.explain(x, weight, groups=2)  # weight [C_in, C_out / groups, kH, kW]
    assert grouped["groups"] == 2 and grouped["problem"]["out_channels"] == 6
    assert grouped["strategy"] in ("fused", "split")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_cropped_gemm_over_cells_or_taps(device, dtype):
    """The cropped GEMM runs over each plane's kept cells where they are fewer than its taps, or as many and each one
    element of x, and (CUDA) the cells' weight takes one pass, kernels of up to 32 taps, or the weight is small beside
    x (cells no tap keeps left out), else over the taps; both against
    the float64 model, on planes of one column, small planes (a thread per plane, or x's own elements) and wide ones
    (the tap kernels), in every layout, with +inf where every tap crops it (a finite answer, as the model's)."""
    cases = [
        # (B, C_in, H, W, C_out, kH, kW), settings, GEMM over (CUDA, None: not asserted), its depth per input channel
        ((8, 4, 100, 1, 5, 3, 3), dict(padding=1), "cells", 3),  # columns: one segment, kept by 3 of 3 taps
        ((64, 3, 5, 9, 4, 4, 1), dict(padding=1), "cells", 3),  # first and last columns kept by no tap
        ((64, 3, 5, 9, 4, 1, 1), dict(padding=1), "taps", 1),  # 1 x 1 kernel: one kept cell, one tap
        ((300, 3, 2, 2, 4, 2, 2), dict(padding=1), "cells", 4),  # 4 elements, each kept by one of 4 taps
        ((300, 3, 3, 2, 4, 2, 2), dict(padding=1), "taps", 4),  # 6 elements, more than the 4 taps
        ((2, 3, 7, 40, 64, 2, 2), dict(padding=1), "taps", 4),  # 9 cells, 4 taps (C_out 64: no shares)
        ((4, 3, 50, 1, 700, 3, 3), dict(padding=1), "cells", 3),  # the weight large beside x, but 9 taps (one pass)
        ((4, 3, 50, 1, 700, 7, 5), dict(padding=1), "taps", 35),  # 35 taps: the cells' weight by values, passes
        ((5, 2, 6, 8, 3, 4, 1), dict(padding=(1, 1), stride=(2, 1)), "cells", 3),
        ((2, 3, 20, 33, 70, 3, 5), dict(padding=(2, 1), dilation=(1, 2)), None, None),
    ]
    for case, (shape, settings, over, depth) in enumerate(cases):
        for layout in ("contiguous", "channels_last", "sliced"):
            x, weight, conv_bias, bias = make_problem(*shape, dtype=dtype, device=device, layout=layout, seed=case)
            what = f"{shape}, {settings}, {layout}"
            if device == "cuda":
                plan = fusedlse_cuda.explain(x, weight, **settings)
                if over is not None and plan["gemm"].get("strategy") != "tap_shares":
                    assert plan["gemm_over"] == over, (plan, what)
                    if depth is not None:
                        assert plan["gemm_depth"] == shape[1] * depth, (plan, what)
            poison_allocator(device)
            out = fusedlse_cuda.forward(x, weight, conv_bias, bias, **settings)
            assert rel_err(out, reference.truth(x, weight, conv_bias, bias, **settings)) <= TOLERANCE[dtype], what
    # An infinity in a column no tap keeps (kW 1, padding 1: the first and last columns are cropped).
    x, weight, conv_bias, bias = make_problem(64, 3, 5, 9, 4, 4, 1, dtype=torch.float64, device=device)
    x[1, 2, 3, 0] = float("inf")
    truth = reference.truth(x, weight, conv_bias, bias, padding=1)
    assert torch.isfinite(truth).all()
    assert rel_err(fusedlse_cuda.forward(x, weight, conv_bias, bias, padding=1), truth) <= TOLERANCE[torch.float64]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_cropped_gemm_over_taps_takes_each_taps_own_weight(device, dtype):
    """The cropped GEMM over taps (explain's gemm_over "taps", the shares forced off) takes each tap's own weight
    (CUDA: the cells' weight kernel over tap_cut's cells, where plan::tap_weight_way says; ATen's copy where a side of
    the kernel has more than 64 taps), zero between groups, in every layout, by the tap kernels and the small-plane
    kernel, against the float64 model; the forward bitwise the same with the sums kept, and (CUDA) with each way of
    making that weight forced. (The GEMM over x's elements forced off, as the shares.)"""
    from fusedlse_cuda.planning import TAP_WEIGHT_WAYS, forced_element_gemm, forced_tap_shares, forced_tap_weight_way

    cases = [
        # (B, C_in, H, W, C_out / groups, kH, kW), settings
        ((3, 4, 7, 40, 64, 2, 2), dict(padding=1)),  # 9 cells, 4 taps
        ((3, 4, 7, 40, 16, 2, 2), dict(padding=1, groups=2)),
        ((2, 6, 9, 50, 10, 3, 5), dict(padding=(1, 2), groups=3)),
        ((2, 2, 4, 70, 20, 1, 65), dict(padding=(0, 32))),  # 65 segments and 65 taps a row: ATen's copy
        ((5, 6, 5, 6, 12, 2, 3), dict(padding=1)),  # planes of 30 elements: the small-plane kernel
    ]
    for case, (shape, settings) in enumerate(cases):
        settings = dict(groups=1) | settings
        for layout in ("contiguous", "channels_last", "sliced"):
            x, weight, conv_bias, bias = grouped_problem(shape, settings, dtype, device, layout, seed=case)
            what = f"{shape}, {settings}, {layout}"
            forcings = contextlib.ExitStack()
            if device == "cuda":
                forcings.enter_context(forced_tap_shares(False))
                forcings.enter_context(forced_element_gemm(False))
            with forcings:
                if device == "cuda":
                    plan = fusedlse_cuda.explain(x, weight, **settings)
                    assert plan["gemm_over"] == "taps" and plan["gemm"].get("strategy") != "tap_shares", (plan, what)
                args = (x, weight, conv_bias, bias) + tuple(conv_settings(**settings).values())
                poison_allocator(device)
                out = torch.ops.fusedlse.forward(*args)[0]
                poison_allocator(device)
                out_alone = torch.ops.fusedlse.forward(*args, keep_sums=False)[0]
                if device == "cuda":
                    for way in TAP_WEIGHT_WAYS:
                        with forced_tap_weight_way(way):
                            poison_allocator(device)
                            out_way = torch.ops.fusedlse.forward(*args, keep_sums=False)[0]
                        assert torch.equal(out_way, out), (way, what)
            assert torch.equal(out_alone, out), what
            assert rel_err(out, reference.truth(x, weight, conv_bias, bias, **settings)) <= TOLERANCE[dtype], what


ELEMENT_CASES = [
    # (B, C_in, H, W, C_out, kH, kW), settings: every element kept by some tap
    ((300, 4, 5, 6, 7, 3, 3), dict(padding=1)),  # cells of several elements
    ((200, 3, 7, 3, 8, 3, 3), dict(padding=1)),  # r54's planes of the sweep, fewer
    ((500, 12, 1, 4, 7, 5, 2), dict(padding=1)),  # r53's
    ((100, 5, 6, 5, 33, 4, 2), dict(padding=(1, 0), stride=(2, 1), dilation=(1, 2))),  # 33 columns: no narrow epilogue
    ((80, 2, 9, 4, 5, 3, 2), dict(padding=(2, 1), output_padding=(1, 0), stride=(2, 1))),
    ((150, 4, 2, 2, 10, 2, 2), dict(padding=1)),  # cells that are x's elements (r50's)
    ((64, 3, 3, 3, 3, 4, 4), dict(padding=1)),  # the same (r07's)
    ((4000, 6, 1, 1, 5, 3, 3), dict(padding=1)),  # planes of one element, each a whole cell (r22's)
]


def batch_slice(x):
    """x's values in every other batch of a tensor twice as long, NaN in the batches between: each batch's values
    still one run of memory."""
    big = torch.full((x.shape[0], 2) + tuple(x.shape[1:]), float("nan"), dtype=x.dtype, device=x.device)
    big[:, 0] = x
    return big[:, 0]


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_padded_gemm_over_x_elements(dtype):
    """The padded forward's GEMM over x's elements where they lie (explain's gemm_over "elements"; forced here past the
    rule's bounds on sizes and times): each element's weight the sum of the taps' that keep it, x's rows in its memory
    order. Taken where each batch's values are one run of memory (contiguous, channels-last, offset by an element,
    every other batch; for float32 and float64, whose rows the epilogue reads as sums, only where the batches follow
    each other) and, for 16-bit x, where the narrow epilogue loads x itself (the plan forced to it; not past 32
    columns); never on sliced planes. Against the float64 model; the forward without the sums bitwise the one with
    them (whose tap sums take a pass of their own), which are the CPU backend's; one case's gradients."""
    from fusedlse_cuda.planning import forced_element_gemm, forced_plan

    in_place = dtype in (torch.float16, torch.bfloat16)
    for case, (shape, settings) in enumerate(ELEMENT_CASES):
        settings = dict(groups=1) | settings
        for layout in ("contiguous", "channels_last", "offset", "batch_slice", "sliced"):
            x, weight, conv_bias, bias = grouped_problem(shape, settings, dtype, "cuda",
                                                         "contiguous" if layout == "batch_slice" else layout,
                                                         seed=case)
            if layout == "batch_slice":
                x = batch_slice(x)
            what = f"{shape}, {settings}, {layout}"
            runs = layout != "sliced" and (in_place or layout != "batch_slice")
            expected = runs and (not in_place or shape[4] <= 32)
            args = (x, weight, conv_bias, bias) + tuple(conv_settings(**settings).values())
            plan_forced = forced_plan("split", "in_epilogue", "narrow_lse") if in_place else contextlib.nullcontext()
            with forced_element_gemm(True), plan_forced:
                plan = fusedlse_cuda.explain(x, weight, **settings)
                assert (plan["gemm_over"] == "elements") == expected, (plan, what)
                if expected:
                    assert plan["gemm_depth"] == shape[1] * shape[2] * shape[3], (plan, what)
                poison_allocator("cuda")
                out, sums = torch.ops.fusedlse.forward(*args)
                poison_allocator("cuda")
                out_alone = torch.ops.fusedlse.forward(*args, keep_sums=False)[0]
            assert torch.equal(out_alone, out), what
            assert rel_err(out, reference.truth(x, weight, conv_bias, bias, **settings)) <= TOLERANCE[dtype], what
            cpu_sums = torch.ops.fusedlse.forward(*(t.cpu() if isinstance(t, torch.Tensor) else t for t in args))[1]
            torch.testing.assert_close(sums.cpu(), cpu_sums, rtol=1e-5, atol=1e-5, msg=what)
    # Never where an element is kept by no tap (kW 1, padding 1: the first and last columns), even forced.
    x, weight, _, _ = make_problem(64, 3, 5, 9, 4, 4, 1, dtype=dtype, device="cuda")
    with forced_element_gemm(True):
        assert fusedlse_cuda.explain(x, weight, padding=1)["gemm_over"] != "elements"
    # Gradients through the forward with the GEMM over elements forced on, where its plan lets it (the backward reads
    # the tap sums).
    x, weight, conv_bias, bias = (t.requires_grad_() for t in make_problem(*ELEMENT_CASES[0][0], dtype=dtype,
                                                                           device="cuda", layout="channels_last"))
    with forced_element_gemm(True):
        out = fusedlse_cuda.forward(x, weight, conv_bias, bias, padding=1)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(3)).to("cuda", dtype)
    grads = torch.autograd.grad(out, [x, weight, conv_bias, bias], grad_out)
    f64 = [t.detach().to("cpu", torch.float64).requires_grad_() for t in (x, weight, conv_bias, bias)]
    expected = torch.autograd.grad(reference.model_forward(*f64, padding=1), f64, grad_out.to("cpu", torch.float64))
    for name, got, want in zip(["x", "weight", "conv_bias", "bias"], grads, expected):
        assert rel_err(got, want) <= 4 * TOLERANCE[dtype], name


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_padded_gemm_over_x_elements_by_the_rule(layout):
    """Unforced: r53 of the sweep at padding 1 ([110640, 12, 1, 4] bfloat16 -> 7, k 5 x 2; its tap readers took 2.6x
    the padding-0 forward, H100) takes the GEMM over x's elements, the narrow epilogue loading x itself; the same x
    under 8 MiB (kElementGemmMinBytes), and any x whose planes are sliced, keep the tap readers. Against the float64
    shortcut."""
    x, weight, conv_bias, bias = make_problem(110640, 12, 1, 4, 7, 5, 2, dtype=torch.bfloat16, device="cuda",
                                              layout=layout, draw_on_device=True)
    plan = fusedlse_cuda.explain(x, weight, padding=1)
    assert plan["gemm_over"] == "elements" and plan["gemm"]["reader"] == "in_epilogue", plan
    assert plan["gemm"]["epilogue"] == "narrow_lse", plan
    assert fusedlse_cuda.explain(x[:80000], weight, padding=1)["gemm_over"] != "elements"
    assert fusedlse_cuda.explain(lay_out(x, "sliced"), weight, padding=1)["gemm_over"] != "elements"
    poison_allocator("cuda")
    out = fusedlse_cuda.forward(x, weight, conv_bias, bias, padding=1)
    truth = reference.tap_shortcut(*(t.double() for t in (x, weight, conv_bias, bias)), padding=1)
    assert rel_err(out, truth) <= TOLERANCE[torch.bfloat16]
    # Planes of one element, each a whole cell (r22's, fewer batches): loaded by the narrow epilogue, as at padding 0.
    x, weight, conv_bias, bias = make_problem(200000, 53, 1, 1, 2, 3, 4, dtype=torch.float16, device="cuda",
                                              layout=layout, draw_on_device=True)
    plan = fusedlse_cuda.explain(x, weight, padding=1)
    assert (plan["gemm_over"], plan["gemm"]["reader"], plan["gemm"]["epilogue"]) == (
        "elements", "in_epilogue", "narrow_lse"), plan
    poison_allocator("cuda")
    out = fusedlse_cuda.forward(x, weight, conv_bias, bias, padding=1)
    truth = reference.tap_shortcut(*(t.double() for t in (x, weight, conv_bias, bias)), padding=1)
    assert rel_err(out, truth) <= TOLERANCE[torch.float16]
    # float32 rows, which the epilogue reads as its sums (r52's, channels-last in the sweep): the GEMM costs its
    # epilogue alone, below the tap readers' time (H100: 266 us against their 320).
    x, weight, conv_bias, bias = make_problem(2079, 142, 21, 19, 11, 5, 3, device="cuda", layout=layout,
                                              draw_on_device=True)
    plan = fusedlse_cuda.explain(x, weight, padding=1)
    assert (plan["gemm_over"], plan["gemm"]["strategy"]) == ("elements", "split"), plan
    assert plan["gemm"]["predicted_us"] == plan["gemm"][plan["gemm"]["epilogue"].replace("_lse", "_us")], plan
    poison_allocator("cuda")
    out = fusedlse_cuda.forward(x, weight, conv_bias, bias, padding=1)
    truth = reference.tap_shortcut(*(t.double() for t in (x, weight, conv_bias, bias)), padding=1)
    assert rel_err(out, truth) <= TOLERANCE[torch.float32]


# (B, C_in, H, W, C_out per group, kH, kW), settings: the tap sums by one GEMM over a 0/1 keep matrix (forced).
KEEP_GEMM_CASES = [
    ((6, 5, 6, 17, 3, 2, 5), dict(padding=1)),  # r33's kernel on narrow planes
    ((4, 3, 9, 8, 4, 4, 2), dict(padding=(2, 1), stride=(2, 1), output_padding=(1, 0))),
    ((3, 4, 7, 5, 2, 3, 3), dict(padding=1, dilation=(1, 2), groups=2)),
    ((2, 2, 1, 40, 3, 1, 5), dict(padding=(0, 2))),  # rows of one plane
    ((5, 1, 12, 1, 2, 4, 1), dict(padding=(1, 0))),  # columns of one element
    ((2, 3, 5, 6, 2, 8, 4), dict(padding=2)),  # 32 taps, a lane each in the mend
]


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_keep_gemm_tap_sums(dtype):
    """Padding's tap sums of 16-bit x by one GEMM of its planes over a 0/1 keep matrix (explain's tap_sums "keep_gemm";
    forced here past the rule's bounds on plane sizes and counts): every setting, one GEMM where the planes are the same
    stride apart (contiguous, offset by an element, channels sliced with one batch) and a batched one where they are not
    (every other batch, channels sliced); never where rows are strided, for float32 or channels-last x, or for planes of
    more than 8192 elements. The sums against the CPU backend's, the output against the float64 model, the forward
    without the sums bitwise the one with them. Infinities in a cropped border reach only the taps that keep them (the
    GEMM's 0 x infinity is mended)."""
    from fusedlse_cuda.planning import forced_element_gemm, forced_keep_gemm

    for case, (shape, settings) in enumerate(KEEP_GEMM_CASES):
        settings = dict(groups=1) | settings
        for layout in ("contiguous", "offset", "batch_slice", "channel_slice", "infinities"):
            x, weight, conv_bias, bias = grouped_problem(shape, settings, dtype, "cuda",
                                                         "offset" if layout == "offset" else "contiguous", seed=case)
            if layout == "batch_slice":
                x = batch_slice(x)
            elif layout == "channel_slice":
                wide = torch.full((x.shape[0], x.shape[1] + 2) + tuple(x.shape[2:]), float("nan"), dtype=dtype,
                                  device="cuda")
                wide[:, 1:-1] = x
                x = wide[:, 1:-1]
            elif layout == "infinities":  # the first and last elements of every plane: cropped by some taps
                x = x.clone()
                x[:, :, 0, 0] = float("inf")
                x[:, 1:, -1, -1] = float("-inf")
            what = f"{shape}, {settings}, {layout}"
            args = (x, weight, conv_bias, bias) + tuple(conv_settings(**settings).values())
            with forced_element_gemm(False), forced_keep_gemm(True):
                plan = fusedlse_cuda.explain(x, weight, **settings)
                assert (plan["tap_sums"], plan["gemm_over"]) == ("keep_gemm", "taps"), (plan, what)
                poison_allocator("cuda")
                out, sums = torch.ops.fusedlse.forward(*args)
                poison_allocator("cuda")
                out_alone = torch.ops.fusedlse.forward(*args, keep_sums=False)[0]
                taps = fusedlse_cuda.tap_sums(x, weight.shape[2:], **{k: v for k, v in settings.items()
                                                                         if k != "groups"})
            torch.testing.assert_close(out_alone, out, rtol=0, atol=0, equal_nan=True, msg=what)
            torch.testing.assert_close(taps, sums, rtol=0, atol=0, equal_nan=True, msg=what)
            cpu_sums = torch.ops.fusedlse.forward(*(t.cpu() if isinstance(t, torch.Tensor) else t for t in args))[1]
            torch.testing.assert_close(sums.cpu(), cpu_sums, rtol=1e-5, atol=1e-5, equal_nan=True, msg=what)
            if layout != "infinities":
                truth = reference.truth(x, weight, conv_bias, bias, **settings)
                assert rel_err(out, truth) <= TOLERANCE[dtype], what
    # Never where x's rows are strided, x is float32 or channels-last, or its planes pass 8192 elements, even forced.
    x, weight, _, _ = make_problem(4, 3, 6, 9, 2, 3, 3, dtype=dtype, device="cuda")
    with forced_keep_gemm(True):
        long_planes = torch.empty(1, 3, 91, 91, dtype=dtype, device="cuda")
        assert fusedlse_cuda.explain(long_planes, weight, padding=1)["tap_sums"] != "keep_gemm"
        assert fusedlse_cuda.explain(lay_out(x, "sliced"), weight, padding=1)["tap_sums"] != "keep_gemm"
        assert fusedlse_cuda.explain(lay_out(x, "channels_last"), weight, padding=1)["tap_sums"] != "keep_gemm"
        assert fusedlse_cuda.explain(x.float(), weight.float(), padding=1)["tap_sums"] != "keep_gemm"


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
def test_keep_gemm_by_the_rule():
    """Unforced: 8192 bfloat16 planes of 6 x 168 (r33's planes and kernel, fewer batches) at padding 2 take the keep
    GEMM (the rows walk's GEMM would run over the 10 taps), and so do r17's planes of 514 x 8 under its 20 taps, and
    planes of at most 1024 elements not 16 bytes apart or not at a 16-byte address; at padding 1 (9 cells, fewer than
    the taps), with planes of 15 elements (the small-plane kernel), fewer planes, or planes of more than 1024 elements
    not 16 bytes apart they keep the tap paths. Against the float64 shortcut."""
    x, weight, conv_bias, bias = make_problem(256, 32, 6, 168, 24, 2, 5, dtype=torch.bfloat16, device="cuda",
                                              draw_on_device=True)
    plan = fusedlse_cuda.explain(x, weight, padding=2)
    assert (plan["tap_sums"], plan["gemm_over"]) == ("keep_gemm", "taps"), plan
    plan = fusedlse_cuda.explain(x, weight, padding=1)
    assert (plan["tap_sums"], plan["gemm_over"]) == ("kernels", "cells"), plan
    assert fusedlse_cuda.explain(x[:255], weight, padding=2)["tap_sums"] == "kernels"
    assert fusedlse_cuda.explain(x[:, :, :3, :5].contiguous(), weight, padding=1)["tap_sums"] != "keep_gemm"
    assert fusedlse_cuda.explain(x[:, :, :, :167].contiguous(), weight, padding=2)["tap_sums"] == "keep_gemm"
    x_off_16 = torch.empty(x.numel() + 1, dtype=x.dtype, device="cuda")[1:].view(x.shape)  # 2 bytes past 16
    assert fusedlse_cuda.explain(x_off_16, weight, padding=2)["tap_sums"] == "keep_gemm"
    x_1026 = torch.empty(256, 32, 6, 171, dtype=torch.bfloat16, device="cuda")  # planes 2052 bytes apart
    assert fusedlse_cuda.explain(x_1026, weight, padding=2)["tap_sums"] != "keep_gemm"
    x_r17 = torch.empty(551, 36, 514, 8, dtype=torch.bfloat16, device="cuda")
    weight_r17 = torch.empty(36, 137, 5, 4, dtype=torch.bfloat16, device="cuda")
    assert fusedlse_cuda.explain(x_r17, weight_r17, padding=2)["tap_sums"] == "keep_gemm"
    poison_allocator("cuda")
    out = fusedlse_cuda.forward(x, weight, conv_bias, bias, padding=2)
    truth = reference.tap_shortcut(*(t.double() for t in (x, weight, conv_bias, bias)), padding=2)
    assert rel_err(out, truth) <= TOLERANCE[torch.bfloat16]


def keep_sums_of(args, kwargs) -> bool:
    """keep_sums of a recorded fusedlse::forward call, however the dispatcher passed it (the schema's default: True)."""
    if "keep_sums" in kwargs:
        return kwargs["keep_sums"]
    return args[9] if len(args) > 9 else True


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_forward_without_sums_is_the_same_forward(device, dtype):
    """keep_sums=False leaves the forward's output bitwise what it is with them, and returns an empty [0] tensor for
    them, on every cropped path: cells that are x's elements (1 x 1 planes, 2 x 2 ones under a 2 x 2 kernel: without
    the sums, the GEMM reads x; with them, the small-plane kernel's cells), whole planes (without the sums, the
    padding-0 readers' sums are the cells), small planes, the tap kernels
    (cells, taps, their shares; rows and channels walks), ATen's border pieces, and padding 0 with groups; in every
    layout. The sums kept are the CPU backend's (bitwise for 1 x 1 planes)."""
    cases = [
        # (B, C_in, H, W, C_out / groups, kH, kW), settings, CUDA's tap_sums path for contiguous x, its GEMM
        ((64, 3, 5, 9, 4, 4, 1), dict(padding=1), "small_planes", "cells"),
        ((2000, 4, 1, 1, 8, 3, 3), dict(padding=1), "small_planes", "cells"),  # x's elements without the sums
        ((300, 6, 2, 2, 5, 2, 2), dict(padding=1), "small_planes", "cells"),  # as many elements as taps
        ((2000, 4, 1, 5, 8, 3, 1), dict(padding=(1, 0)), "small_planes", "cells"),  # whole planes without the sums
        ((500, 4, 1, 1, 300, 3, 3), dict(padding=1, dilation=2), "small_planes", "cells"),
        ((500, 4, 3, 2, 30, 2, 2), dict(padding=1), "small_planes", "taps"),  # 6 elements, more than the 4 taps
        ((64, 4, 100, 1, 40, 3, 3), dict(padding=1), "kernels", "cells"),
        # Without the sums the middle cells are added by a group of lanes per plane as wide as its runs are many: a
        # lane and a few. Planes as many as the combining warps of an H200 or an RTX 4090 take in one round, at most:
        # more (as below) are staged.
        ((1500, 2, 5, 16, 3, 4, 4), dict(padding=1), "kernels", "cells"),
        ((700, 4, 12, 20, 5, 4, 4), dict(padding=1), "kernels", "cells"),
        ((17000, 2, 5, 16, 3, 4, 4), dict(padding=1), "staged_planes", "cells"),
        ((2000, 4, 12, 20, 5, 4, 4), dict(padding=1), "staged_planes", "cells"),
        ((2, 3, 7, 40, 64, 2, 2), dict(padding=1), "kernels", "taps"),
        ((3, 5, 20, 48, 3, 3, 4), dict(padding=(1, 2), stride=(2, 1)), "kernels", "shares"),
        ((2, 3, 20, 33, 5, 3, 3), dict(padding=(1, 9)), "aten", None),
        ((2, 3, 20, 33, 70, 3, 3), dict(padding=(1, 9)), "aten", None),
        ((4, 6, 9, 7, 4, 3, 3), dict(groups=2), None, None),
    ]
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    for case, (shape, settings, path, gemm) in enumerate(cases):
        settings = dict(groups=1) | settings
        for layout in ("contiguous", "channels_last", "sliced"):
            x, weight, conv_bias, bias = grouped_problem(shape, settings, dtype, device, layout, seed=case)
            what = f"{shape}, {settings}, {layout}"
            if device == "cuda" and path is not None and layout != "sliced":
                plan = fusedlse_cuda.explain(x, weight, **settings)
                channels = path == "kernels" and layout == "channels_last"
                assert plan["tap_sums"] == ("channel_kernels" if channels else path), (plan, what)
                if gemm == "shares":
                    assert plan["gemm"]["strategy"] == "tap_shares", (plan, what)
                elif gemm is not None and plan["gemm"].get("strategy") != "tap_shares":
                    # From 8 MiB on the GEMM may run over x's elements where the rule predicts it faster
                    # (test_padded_gemm_over_x_elements); the tap sums kept for the backward are still by `path`.
                    assert plan["gemm_over"] in ((gemm, "elements") if x.nbytes >= 8 << 20 else (gemm,)), (plan, what)
            args = (x, weight, conv_bias, bias) + tuple(conv_settings(**settings).values())
            poison_allocator(device)
            out, sums = torch.ops.fusedlse.forward(*args)
            poison_allocator(device)
            out_alone, no_sums = torch.ops.fusedlse.forward(*args, keep_sums=False)
            assert torch.equal(out_alone, out), what
            assert no_sums.shape == (0,) and no_sums.dtype == acc and no_sums.device == x.device, what
            assert sums.shape[:2] == shape[:2] and sums.dtype == acc, what
            assert rel_err(out, reference.truth(x, weight, conv_bias, bias, **settings)) <= TOLERANCE[dtype], what
            if device == "cuda":
                cpu_sums = torch.ops.fusedlse.forward(*(t.cpu() if isinstance(t, torch.Tensor) else t for t in args))[1]
                if shape[2:4] == (1, 1):
                    assert torch.equal(sums.cpu(), cpu_sums), what
                else:
                    torch.testing.assert_close(sums.cpu(), cpu_sums, rtol=1e-5, atol=1e-5, msg=what)
    # An infinity in a 1 x 1 plane reaches the taps that keep the plane, and no other (written 0, not multiplied).
    x, weight, conv_bias, bias = make_problem(64, 3, 1, 1, 4, 3, 3, dtype=dtype, device=device)
    x[5, 1] = float("inf")
    sums = torch.ops.fusedlse.forward(x, weight, conv_bias, bias, [1, 1], [1, 1], [0, 0], [1, 1], 1)[1]
    assert sums[5, 1, 1, 1] == float("inf") and torch.isfinite(sums[5, 1]).sum() == 8 and (sums[5, 1] == 0).sum() == 8


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_staged_planes_of_every_layout(dtype):
    """The staged small-plane kernel (many planes of 65 to 1024 elements: a tile of planes copied into shared memory,
    then each cell's rectangle added there): staged along rows (contiguous and sliced x, planes up to a block's 256
    threads) and along channels (channels-last x, C not dividing the tile), with stride, dilation and padding that
    differs by side, a last tile part full; its per-tap sums as the CPU backend's, its output as the float64
    model's, and bitwise the same without the sums."""
    cases = [
        # (B, C_in, H, W, C_out, kH, kW), layout, settings
        ((1000, 4, 9, 13, 6, 3, 3), "contiguous", dict(padding=1)),
        ((1000, 4, 9, 13, 6, 3, 3), "sliced", dict(padding=(2, 1), stride=(2, 1))),
        ((4001, 1, 10, 12, 3, 5, 5), "contiguous", dict(padding=3)),
        ((700, 6, 7, 11, 5, 4, 2), "channels_last", dict(padding=1, dilation=(1, 2))),
        ((350, 13, 5, 20, 4, 2, 3), "channels_last", dict(padding=(1, 2))),
    ]
    for case, (shape, layout, settings) in enumerate(cases):
        x, weight, conv_bias, bias = make_problem(*shape, dtype=dtype, device="cuda", layout=layout, seed=case)
        what = f"{shape}, {layout}, {settings}"
        plan = fusedlse_cuda.explain(x, weight, **settings)
        assert plan["tap_sums"] == "staged_planes", (plan, what)
        args = (x, weight, conv_bias, bias) + tuple(conv_settings(**settings).values())
        poison_allocator("cuda")
        out, sums = torch.ops.fusedlse.forward(*args)
        poison_allocator("cuda")
        out_alone = torch.ops.fusedlse.forward(*args, keep_sums=False)[0]
        assert torch.equal(out_alone, out), what
        cpu_sums = torch.ops.fusedlse.forward(*(t.cpu() if isinstance(t, torch.Tensor) else t for t in args))[1]
        torch.testing.assert_close(sums.cpu(), cpu_sums, rtol=1e-5, atol=1e-5, msg=what)
        assert rel_err(out, reference.truth(x, weight, conv_bias, bias, **settings)) <= TOLERANCE[dtype], what


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_cell_weight_of_large_kernels(device, dtype):
    """The cells' weight (CUDA: a thread per pair of channels with its taps in registers where the kernel has at most
    32 taps and the pairs fill the device, else a thread per value adding its cell's taps) of kernels of many and of
    few taps, with groups (W.sum, block-diagonal, at padding 0) and over the cells of padded planes, against the
    float64 model."""
    cases = [
        # (B, C_in, H, W, C_out / groups, kH, kW), settings
        ((3, 4, 6, 5, 25, 20, 20), dict(groups=2)),  # padding 0: W.sum by the kernel, 400 taps
        ((2, 3, 3, 2, 2, 65, 64), dict(groups=3)),  # 4160 taps
        ((500, 2, 6, 30, 70, 9, 14), dict(padding=1)),  # 126 taps, 9 cells
        ((1000, 4, 7, 9, 33, 5, 4), dict(padding=(2, 1), groups=2)),
        # 38400 pairs of channels: a thread per pair on 150 multiprocessors or fewer
        ((40, 64, 9, 7, 600, 3, 5), dict(padding=1)),  # 15 taps, 9 cells
        ((40, 64, 9, 7, 300, 5, 6), dict(padding=(1, 2), groups=2)),  # 30 taps
        ((8, 64, 5, 5, 300, 4, 4), dict(groups=2)),  # padding 0: W.sum, block-diagonal
    ]
    for case, (shape, settings) in enumerate(cases):
        settings = dict(groups=1) | settings
        x, weight, conv_bias, bias = grouped_problem(shape, settings, dtype, device, "contiguous", seed=case)
        what = f"{shape}, {settings}"
        if device == "cuda" and settings.get("padding"):
            plan = fusedlse_cuda.explain(x, weight, **settings)
            assert plan["gemm"].get("strategy") == "tap_shares" or plan["gemm_over"] == "cells", (plan, what)
        poison_allocator(device)
        out = fusedlse_cuda.forward(x, weight, conv_bias, bias, **settings)
        assert rel_err(out, reference.truth(x, weight, conv_bias, bias, **settings)) <= TOLERANCE[dtype], what


def assert_forward_and_sums(args, cpu_sums, truth, dtype, what):
    """The CUDA forward of `args` with its per-tap sums and without, each into poisoned memory: the sums finite and
    as the CPU backend's `cpu_sums`, each within 1e-4 of its plane's absolute sum (a lane may add a whole plane in
    turn: that sum bounds the rounding of any order of adds, the sum itself does not); the output as the float64
    model's `truth`; and bitwise the same without the sums."""
    poison_allocator("cuda")
    out, sums = torch.ops.fusedlse.forward(*args)
    poison_allocator("cuda")
    out_alone = torch.ops.fusedlse.forward(*args, keep_sums=False)[0]
    plane_abs_sums = args[0].to("cpu", torch.float64).abs().sum((2, 3))[..., None, None]
    gap = (sums.to("cpu", torch.float64) - cpu_sums.double()).abs()
    assert torch.isfinite(sums).all(), what
    assert (gap <= 1e-4 * plane_abs_sums + 1e-5).all(), (what, (gap / (plane_abs_sums + 1e-30)).max())
    assert rel_err(out, truth) <= TOLERANCE[dtype], what
    assert torch.equal(out_alone, out), what


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_channels_walk_of_every_slicing(dtype):
    """The tap kernels' channels walk (channels-last x) with C cut into slices from the fewest (ceil(C / 32)) to one
    channel each (planning.forced_channel_slices: the lanes a slice leaves over walk further positions, up to 32 of
    them), and as the rule cuts it; row by row in float32 where a lane takes a column of rows of 64 or more (borders
    of 1 and 2 columns in registers, of 3 in shared memory, rows sliced from wider ones), flat beside it. Its per-tap
    sums as the CPU backend's, its output as the float64 model's and bitwise the forward's without the sums."""
    from fusedlse_cuda.planning import forced_channel_slices

    cases = [
        # (B, C_in, H, W, C_out, kH, kW), settings, slice counts, columns cut from each row's end (a slice of W),
        # whether the rule's walk is row by row in float32 (explain's channel_walk)
        ((3, 33, 20, 9, 5, 5, 3), dict(padding=1), (2, 3, 5, 9, 17, 33), 0, False),
        ((2, 70, 11, 13, 4, 3, 3), dict(padding=(1, 2)), (3, 4, 8, 35, 70), 0, False),
        ((4, 7, 9, 30, 6, 4, 5), dict(padding=2, stride=(1, 2)), (1, 2, 3, 7), 0, False),
        ((2, 64, 12, 80, 6, 3, 3), dict(padding=1), (4,), 0, True),  # the rule's 2 slices row by row; 4 slices flat
        ((2, 9, 10, 150, 5, 5, 3), dict(padding=(1, 2)), (), 0, False),  # 9 channels, 2 lanes across a row: flat
        ((2, 32, 9, 70, 3, 4, 4), dict(padding=3), (), 0, True),
        ((2, 24, 7, 75, 4, 3, 5), dict(padding=(2, 1), stride=(1, 2)), (), 5, True),
        # Rows of 2 at padding 1: no middle column, the flat walk's middle rows their border columns alone; rows of 3:
        # a middle column, up to 32 position lanes stepping 32 rows at a time.
        ((2, 33, 40, 2, 5, 3, 3), dict(padding=1), (2, 33), 0, False),
        ((3, 20, 30, 3, 4, 3, 3), dict(padding=1), (1, 5, 20), 0, False),
    ]
    for case, (shape, settings, slicings, cut, rows_in_float32) in enumerate(cases):
        settings = dict(groups=1) | settings
        x, weight, conv_bias, bias = grouped_problem(shape, settings, dtype, "cuda", "channels_last", seed=case)
        x = x[..., :x.shape[3] - cut] if cut else x
        plan = fusedlse_cuda.explain(x, weight, **settings)
        assert plan["tap_sums"] == "channel_kernels", (plan, shape)
        assert plan["channel_walk"] == ("rows" if rows_in_float32 and dtype == torch.float32 else "flat"), (plan, shape)
        args = (x, weight, conv_bias, bias) + tuple(conv_settings(**settings).values())
        cpu_sums = torch.ops.fusedlse.forward(*(t.cpu() if isinstance(t, torch.Tensor) else t for t in args))[1]
        truth = reference.truth(x, weight, conv_bias, bias, **settings)
        for slices in slicings + (None,):
            what = f"{shape}, {settings}, {cut} columns cut, {slices or 'the rule'}'s slices"
            with forced_channel_slices(slices) if slices else contextlib.nullcontext():
                assert_forward_and_sums(args, cpu_sums, truth, dtype, what)


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_tap_reader_runs_of_every_length(dtype):
    """The tap reader's runs of rows (plan::tap_run_chunks) with every least run forced, from none (as many runs as
    the resident warps ask for, down to a row each) to whole planes, and the rule's: rows of one element, rows that
    are not whole vectors, the channels walk; with the sums (the CPU backend's) and without (the middle cells alone:
    the model's output, and the same as with them)."""
    from fusedlse_cuda.planning import forced_tap_min_run_bytes

    cases = [
        # (B, C_in, H, W, C_out, kH, kW), layout, explain's tap_sums
        ((64, 12, 300, 1, 40, 5, 5), "contiguous", "kernels"),
        ((40, 3, 31, 44, 20, 4, 3), "sliced", "kernels"),
        ((8, 33, 50, 20, 16, 4, 5), "channels_last", "channel_kernels"),
    ]
    for case, (shape, layout, path) in enumerate(cases):
        x, weight, conv_bias, bias = make_problem(*shape, dtype=dtype, device="cuda", layout=layout, seed=case)
        assert fusedlse_cuda.explain(x, weight, padding=1)["tap_sums"] == path, shape
        args = (x, weight, conv_bias, bias, [1, 1], [1, 1], [0, 0], [1, 1], 1)
        cpu_sums = torch.ops.fusedlse.forward(*(t.cpu() if isinstance(t, torch.Tensor) else t for t in args))[1]
        truth = reference.truth(x, weight, conv_bias, bias, padding=1)
        for run_bytes in (0, 256, 4096, 2**40, None):
            what = f"{shape}, {layout}, least run {run_bytes if run_bytes is not None else 'the rule'}"
            with forced_tap_min_run_bytes(run_bytes) if run_bytes is not None else contextlib.nullcontext():
                assert_forward_and_sums(args, cpu_sums, truth, dtype, what)
    with pytest.raises(ValueError, match="run_bytes must be an int of 0 or more, got -1"):
        with forced_tap_min_run_bytes(-1):
            pass


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
@pytest.mark.parametrize("view", STRIDED_VIEWS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_tap_reader_reads_views_of_any_strides(dtype, view):
    """Padding's readers over views of any strides (helpers.STRIDED_VIEWS), with runs of a row or so, of 256 bytes
    and the rule's, each plane's shares of the GEMM added by the tap kernels or not: the per-tap sums as the CPU
    backend's of a contiguous float64 copy, the output as the float64 model's, and the same without the sums."""
    from fusedlse_cuda.planning import forced_element_gemm, forced_tap_min_run_bytes, forced_tap_shares

    for case, shape in enumerate([(40, 3, 31, 44, 20, 4, 3), (8, 33, 50, 20, 16, 4, 5)]):
        x, weight, conv_bias, bias = make_problem(*shape, dtype=dtype, device="cuda", seed=case)
        x = strided_view(x, view)
        args = (x, weight, conv_bias, bias, [1, 1], [1, 1], [0, 0], [1, 1], 1)
        cpu_args = (x.to("cpu", torch.float64).contiguous(),) + tuple(
            t.to("cpu", torch.float64) if isinstance(t, torch.Tensor) else t for t in args[1:])
        cpu_sums = torch.ops.fusedlse.forward(*cpu_args)[1]
        truth = reference.truth(x, weight, conv_bias, bias, padding=1)
        for run_bytes, shares in itertools.product((0, 256, None), (True, False)):
            what = f"{shape}, least run {run_bytes}, shares {shares}"
            with forced_tap_min_run_bytes(run_bytes) if run_bytes is not None else contextlib.nullcontext(), \
                    forced_tap_shares(shares):
                assert_forward_and_sums(args, cpu_sums, truth, dtype, what)


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_rows_that_are_not_whole_vectors_through_the_stage(dtype):
    """The tap reader's staged walk (rows that are not whole 16-byte vectors, W > 1, a row's span within a warp's
    stage): rows narrower than half a warp (several rows at once), wider than a warp (a lane's columns 32 apart), pieces
    of many rows and of one, gaps of NaN between rows (which no sum may take), planes off 16 bytes, borders in registers
    and in shared memory (before the stages), border rows (1 to 6 a side, in groups of any count) taken from the stage
    with the middle ones, planes of border rows or border columns alone; the sums as the CPU backend's, the output as
    the model's, and the same without the sums. Staged whatever the rule (planning.forced_tap_stage): it sends rows past
    1.5 KiB to the span walk."""
    from fusedlse_cuda.planning import forced_tap_stage

    cases = [
        # (B, C_in, H, W, C_out, kH, kW), layout, padding
        ((6, 5, 200, 45, 9, 4, 3), "sliced", 1),
        ((6, 5, 90, 7, 9, 4, 3), "contiguous", 1),
        ((4, 3, 64, 13, 5, 5, 5), "offset", 3),
        ((3, 2, 40, 301, 7, 5, 5), "contiguous", 2),
        ((5, 4, 33, 10, 6, 3, 3), "sliced", 1),
        ((4, 3, 40, 23, 5, 9, 7), "contiguous", 6),  # 12 border rows and 12 border columns
        ((3, 2, 30, 4, 5, 3, 3), "contiguous", 2),  # every column a border one
        ((5, 4, 6, 37, 6, 7, 3), "offset", 3),  # every row a border one
        ((2, 3, 50, 70, 4, 5, 7), "sliced", 3),  # 3 border rows a side, 70 columns
    ]
    with forced_tap_stage(True):
        for case, (shape, layout, padding) in enumerate(cases):
            x, weight, conv_bias, bias = make_problem(*shape, dtype=dtype, device="cuda", layout=layout, seed=case)
            assert fusedlse_cuda.explain(x, weight, padding=padding)["tap_sums"] == "kernels", shape
            args = (x, weight, conv_bias, bias, [1, 1], [padding, padding], [0, 0], [1, 1], 1)
            cpu_sums = torch.ops.fusedlse.forward(*(t.cpu() if isinstance(t, torch.Tensor) else t for t in args))[1]
            truth = reference.truth(x, weight, conv_bias, bias, padding=padding)
            assert_forward_and_sums(args, cpu_sums, truth, dtype, f"{shape}, {layout}, padding {padding}")


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_staged_span_sums_fall_back_where_not_finite(dtype):
    """The staged walk's middle rows as the sum of the staged span less its border rows and border columns (rows
    with no gap between them and at least 8 elements a border column: explain's middle_by_span with the stage): a
    piece with an infinity or a NaN anywhere (its middle, a middle row's border column, a border row) takes the column
    walk, so the per-tap sums are the CPU backend's, infinities and NaNs where it has them and the finite sums within
    the dtype's tolerance; pieces of every row and of a few (rows of 45 and 301 elements), and rows of 45 at padding 3
    (6 border columns: the walk without span sums)."""
    from fusedlse_cuda.planning import forced_tap_stage

    for width in (45, 301):
        x = make_problem(3, 4, 40, width, 1, 1, 1, dtype=dtype, device="cuda", seed=width)[0]
        x[0, 1, 20, 22] = float("inf")  # a middle row's middle column
        x[1, 2, 10, 30] = float("nan")
        x[2, 3, 15, 0] = float("-inf")  # a middle row's border column
        x[2, 0, 0, 10] = float("inf")  # a border row
        for padding, kernel in itertools.product((1, 3), ((3, 5), (4, 4))):
            what = (width, padding, kernel, dtype)
            with forced_tap_stage(True):
                plan = fusedlse_cuda.explain(x, torch.ones(4, 1, *kernel, dtype=dtype, device="cuda"),
                                             padding=padding)
                # a border column a side per padding step (stride 1): 2 * padding of them
                assert plan["middle_by_span"] == (width >= 8 * 2 * padding), (what, plan)
                got = fusedlse_cuda.tap_sums(x, kernel, padding=padding).to("cpu", torch.float64)
            want = fusedlse_cuda.tap_sums(x.cpu(), kernel, padding=padding).to(torch.float64)
            finite = torch.isfinite(want)
            assert not finite.all() and finite.any(), what
            assert torch.equal(torch.isfinite(got), finite), what
            assert torch.equal(got[~finite].isnan(), want[~finite].isnan()), what
            assert torch.equal(got[~finite].nan_to_num(0.0), want[~finite].nan_to_num(0.0)), what
            assert rel_err(got[finite], want[finite]) <= TOLERANCE[dtype], what


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_explain_names_the_middle_rows_the_reader_takes(dtype):
    """explain's middle_by_span is the reader's own choice (ops_cuda.cpp tap_rows_walk) even where forced_tap_stage
    sends rows to a stage they do not fit: rows of 64 elements go through the stage and sum their middle rows as its
    span less the rest (8 elements and more a border column: True); rows of 2100 (past kTapStageMaxBytes, 4 KiB, in
    every dtype) take the span walk, which at borders of 3 columns walks the middle rows (False). The sums as the CPU
    backend's either way."""
    from fusedlse_cuda.planning import forced_tap_stage

    kernel, padding = (3, 3), 3  # 3 border columns a side
    for width, by_span in ((64, True), (2100, False)):
        x = make_problem(3, 4, 40, width, 1, 1, 1, dtype=dtype, device="cuda", seed=width)[0]
        with forced_tap_stage(True):
            plan = fusedlse_cuda.explain(x, torch.ones(4, 1, *kernel, dtype=dtype, device="cuda"), padding=padding)
            assert (plan["tap_sums"], plan["middle_by_span"]) == ("kernels", by_span), (width, plan)
            got = fusedlse_cuda.tap_sums(x, kernel, padding=padding).to("cpu", torch.float64)
        want = fusedlse_cuda.tap_sums(x.cpu(), kernel, padding=padding).to(torch.float64)
        assert rel_err(got, want) <= TOLERANCE[dtype], (width, dtype)


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("stage", [True, False], ids=["staged", "span"])
def test_tap_reader_with_the_stage_forced(dtype, stage):
    """forced_tap_stage: rows of whole 16-byte vectors through the stage (borders of 1 to 3 columns, 3 in shared
    memory there rather than kVectorBorderSide's registers, border rows from the stage) and rows that are not whole
    vectors by the span walk's 16-byte loads (vectors across rows and their border columns element by element); the
    sums as the CPU backend's, the output as the model's, infinities in border columns and rows kept apart."""
    from fusedlse_cuda.planning import forced_tap_stage

    kernel = (3, 9)
    rows_of = [(48, 48), (48, 56), (45, 45), (45, 48), (5, 5), (64, 64)]  # (W, the row stride)
    with forced_tap_stage(stage):
        for pad, (width, stride_h) in itertools.product((1, 2, 3), rows_of):
            if pad > 1 and width < 8:
                continue
            settings = dict(padding=(1, pad))
            x = make_problem(2, 3, 20, stride_h, 1, 1, 1, dtype=dtype, device="cuda", seed=pad)[0][..., :width]
            infinities = {(0, 1, 5, 0): float("inf"), (1, 2, 7, width - 1): float("-inf"),
                          (1, 0, 0, 1): float("inf"), (0, 0, 19, width - 2): float("-inf")}
            assert_tap_sums_keep_infinities_apart(x, kernel, settings, infinities)
        x, weight, conv_bias, bias = make_problem(6, 5, 40, 48, 9, 4, 3, dtype=dtype, device="cuda", seed=7)
        args = (x, weight, conv_bias, bias, [1, 1], [2, 2], [0, 0], [1, 1], 1)
        cpu_sums = torch.ops.fusedlse.forward(*(t.cpu() if isinstance(t, torch.Tensor) else t for t in args))[1]
        truth = reference.truth(x, weight, conv_bias, bias, padding=2)
        assert_forward_and_sums(args, cpu_sums, truth, dtype, "[6, 5, 40, 48] padding 2")


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("by_span", [True, False], ids=["by_span", "walks"])
def test_tap_reader_with_the_middle_by_span_forced(dtype, by_span):
    """forced_tap_middle_by_span: the middle rows of rows that follow each other with no gap summed whole, each row's
    border columns loaded apart and taken off, or the stage's span less the rest (True; explain's middle_by_span), or
    never (the stage or the span walk adding the middle columns): borders of 0 to 2 columns a side (in registers;
    borders of 3 by the stage's span sums, rows of 37 elements that are not whole vectors), rows of whole 16-byte
    vectors and not, a middle of one column, a column (W = 1), planes off 16 bytes, runs of one row and of many. The
    sums as the CPU backend's, the output as the model's; infinities in border columns of middle rows and of border rows
    kept apart: a run that meets one is read again by a walk that only adds."""
    from fusedlse_cuda.planning import forced_tap_middle_by_span, forced_tap_min_run_bytes

    cases = [
        # (B, C_in, H, W, C_out, kH, kW), layout, padding (rows, columns), least run of rows (None: the rule's)
        ((6, 5, 40, 45, 9, 4, 3), "contiguous", (1, 1), None),
        ((6, 5, 40, 48, 9, 3, 5), "offset", (2, 2), None),
        ((4, 3, 300, 37, 5, 5, 7), "contiguous", (1, 2), 0),
        ((3, 2, 24, 5, 7, 3, 5), "offset", (1, 2), None),
        ((4, 3, 60, 37, 5, 5, 7), "contiguous", (1, 3), None),
        ((5, 4, 600, 1, 6, 3, 1), "contiguous", (1, 0), 0),
        ((2, 3, 30, 301, 4, 5, 5), "offset", (2, 1), None),
        ((3, 4, 50, 20, 6, 3, 3), "contiguous", (1, 0), None),
    ]
    with forced_tap_middle_by_span(by_span):
        for case, (shape, layout, padding, least_run) in enumerate(cases):
            x, weight, conv_bias, bias = make_problem(*shape, dtype=dtype, device="cuda", layout=layout, seed=case)
            plan = fusedlse_cuda.explain(x, weight, padding=padding)
            assert (plan["tap_sums"], plan["middle_by_span"]) == ("kernels", by_span), (shape, plan)
            args = (x, weight, conv_bias, bias, [1, 1], list(padding), [0, 0], [1, 1], 1)
            cpu_sums = torch.ops.fusedlse.forward(*(t.cpu() if isinstance(t, torch.Tensor) else t for t in args))[1]
            truth = reference.truth(x, weight, conv_bias, bias, padding=padding)
            what = f"{shape}, {layout}, padding {padding}"
            with forced_tap_min_run_bytes(least_run) if least_run is not None else contextlib.nullcontext():
                assert_forward_and_sums(args, cpu_sums, truth, dtype, what)
        for pad, width in itertools.product((1, 2, 3), (45, 48, 7)):
            x = make_problem(2, 3, 20, width, 1, 1, 1, dtype=dtype, device="cuda", seed=pad)[0]
            infinities = {(0, 1, 5, 0): float("inf"), (1, 2, 7, width - 1): float("-inf"),
                          (1, 0, 0, 1): float("inf"), (0, 0, 19, width - 2): float("-inf")}
            assert_tap_sums_keep_infinities_apart(x, (3, 9), dict(padding=(1, pad)), infinities)


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_forced_fused_cropped_gemm_without_sums(dtype):
    """The cropped GEMM forced through the fused launch (the planner never picks it for 1 x 1 rows), with and without
    the sums, over cells (whole planes and the tap kernels) and over taps: the same output, the real model's."""
    from fusedlse_cuda.planning import forced_plan

    for case, (shape, gemm) in enumerate([((2000, 4, 1, 1, 8, 3, 3), "cells"), ((64, 4, 100, 1, 40, 3, 3), "cells"),
                                          ((2, 3, 7, 40, 64, 2, 2), "taps")]):
        x, weight, conv_bias, bias = grouped_problem(shape, dict(groups=1, padding=1), dtype, "cuda", "contiguous",
                                                     seed=case)
        args = (x, weight, conv_bias, bias, [1, 1], [1, 1], [0, 0], [1, 1], 1)
        with forced_plan("fused"):
            plan = fusedlse_cuda.explain(x, weight, padding=1)
            assert (plan["gemm"]["strategy"], plan["gemm_over"]) == ("fused", gemm), (plan, shape)
            poison_allocator("cuda")
            out, sums = torch.ops.fusedlse.forward(*args)
            poison_allocator("cuda")
            out_alone, no_sums = torch.ops.fusedlse.forward(*args, keep_sums=False)
        assert torch.equal(out_alone, out) and no_sums.shape == (0,) and sums.shape == (shape[0], shape[1]) + shape[5:]
        truth = reference.truth(x, weight, conv_bias, bias, padding=1)
        assert rel_err(out, truth) <= TOLERANCE[dtype], shape


@pytest.mark.parametrize("device", DEVICES)
def test_forward_keeps_sums_only_for_a_backward(device):
    """fusedlse_cuda.forward asks the op for its sums only where autograd records the call (grad mode on and an
    input that requires grad); the op's autograd refuses a recorded call without them."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Recorder(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.keep_sums = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is torch.ops.fusedlse.forward.default:
                self.keep_sums.append(keep_sums_of(args, kwargs))
            return func(*args, **kwargs)

    x, weight, conv_bias, bias = make_problem(3, 4, 6, 5, 6, 3, 3, device=device)
    for settings in (dict(), dict(padding=1)):
        for grad in (False, True):
            for mode in (torch.enable_grad, torch.no_grad):
                weight.requires_grad_(grad)
                with Recorder() as recorder, mode():
                    out = fusedlse_cuda.forward(x, weight, conv_bias, bias, **settings)
                recorded = grad and mode is torch.enable_grad
                assert recorder.keep_sums == [recorded] and out.requires_grad == recorded, (settings, grad, mode)
    weight.requires_grad_(True)
    with pytest.raises(RuntimeError, match="keep_sums=False"):
        torch.ops.fusedlse.forward(x, weight, conv_bias, bias, keep_sums=False)
