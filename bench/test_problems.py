"""The public random sweep's problems (bench/problems.py random_problems): the ranges issue 14 asks for, on CPU."""
import torch

from problems import RANDOM_DTYPES, RANDOM_LAYOUTS, RANDOM_LIMITS, make_random_inputs, random_problems


def test_random_problems_span_the_required_ranges():
    problems = random_problems()
    assert len(problems) >= 60
    assert problems == random_problems()  # seeded: the same problems every time
    sizes = [shape for shape, _, _ in problems.values()]
    batches = [s[0] for s in sizes]
    c_ins = [s[1] for s in sizes]
    planes = [s[2] * s[3] for s in sizes]
    c_outs = [s[4] for s in sizes]
    assert min(batches) == 1 and max(batches) == RANDOM_LIMITS["batch"]
    assert min(c_ins) == 1 and max(c_ins) == RANDOM_LIMITS["c_in"]
    assert min(c_outs) <= 2 and max(c_outs) >= RANDOM_LIMITS["c_out"] // 2
    assert min(planes) == 1 and max(planes) == RANDOM_LIMITS["plane"]
    for shape, dtype, _ in problems.values():
        nbytes = shape[0] * shape[1] * shape[2] * shape[3] * torch.empty((), dtype=dtype).element_size()
        assert RANDOM_LIMITS["min_bytes"] <= nbytes <= RANDOM_LIMITS["max_bytes"], (shape, dtype)
    combos = {(dtype, layout) for _, dtype, layout in problems.values()}
    assert combos == {(d, l) for d in RANDOM_DTYPES for l in RANDOM_LAYOUTS}


def test_random_inputs_have_the_named_layouts():
    for index, layout in enumerate(RANDOM_LAYOUTS * 2):
        x = make_random_inputs(((3, 4, 5, 6, 7, 3, 3), torch.float32, layout), index=index, device="cpu")[0]
        assert x.shape == (3, 4, 5, 6)
        if layout == "contiguous":
            assert x.is_contiguous()
        elif layout == "channels_last":
            assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        elif layout == "sliced_hw":
            assert x.stride(3) == 1 and x.stride(2) > x.shape[3]
        else:  # sliced_bc: whole planes, batch or channel strides of a bigger tensor
            assert x.stride(3) == 1 and x.stride(2) == x.shape[3]
            assert (x.stride(1), x.stride(0)) != (30, 120)


def test_touched_bytes_counts_the_sectors_a_reader_must_fetch():
    from problems import sweep_layout
    from sweep import touched_bytes

    x = torch.zeros(7, 5, 3, 8, dtype=torch.float16)  # 1680 bytes, contiguous: whole sectors but the last's tail
    assert touched_bytes(x) == 1696
    assert touched_bytes(x.contiguous(memory_format=torch.channels_last)) == 1696
    # r59's planes: 3 x 1 float64 in a [4, 3] plane of 96 bytes; elements at bytes 40, 64, 88: sectors 1 and 2
    sliced = sweep_layout(torch.zeros(2, 3, 3, 1, dtype=torch.float64), "sliced_hw")
    assert touched_bytes(sliced) == 2 * 3 * 64
    # every other batch: whole planes of 3 x 8 float32 (96 bytes, 3 sectors), each plane's own
    assert touched_bytes(sweep_layout(torch.zeros(4, 2, 3, 8), "sliced_bc", seed=1)) == 4 * 2 * 96
    # by brute force over the bytes of each element, on sliced rows of an odd width
    y = sweep_layout(torch.zeros(3, 2, 5, 7, dtype=torch.bfloat16), "sliced_hw")
    sectors = {(y.storage_offset() + sum(i * s for i, s in zip(index, y.stride()))) * 2 // 32
               for index in torch.cartesian_prod(*[torch.arange(n) for n in y.shape]).tolist()}
    assert touched_bytes(y) == 32 * len(sectors)


def test_compare_sweeps_takes_each_builds_best_run(tmp_path):
    """bench/compare_sweeps.py: per shape the best floor_frac of each build's runs (a failed run counts 0), only
    the provider asked for, and B against A worst first."""
    import json

    from compare_sweeps import best_fracs, compare

    def write(name, fracs):
        rows = [dict(shape=shape, provider="cuda", floor_frac=frac) for shape, frac in fracs.items()]
        rows.append(dict(shape="r00", provider="torch_shortcut", floor_frac=9.0))
        rows.append(dict(shape="r01", provider="cuda", error="failed"))
        path = tmp_path / name
        path.write_text(json.dumps(dict(meta={}, rows=rows)))
        return str(path)

    a = best_fracs([write("a1", {"r00": 0.5, "r02": 0.8}), write("a2", {"r00": 0.6, "r02": 0.7})], "cuda")
    b = best_fracs([write("b1", {"r00": 0.3, "r02": 0.9}), write("b2", {"r00": 0.45, "r02": 0.85})], "cuda")
    assert a == {"r00": 0.6, "r01": 0.0, "r02": 0.8} and b == {"r00": 0.45, "r01": 0.0, "r02": 0.9}
    rows = compare(a, b)
    assert [row[0] for row in rows] == ["r00", "r01", "r02"]
    assert rows[0][3] == 0.45 / 0.6 and rows[1][3] == 1.0 and rows[2][3] == 0.9 / 0.8
    b["r01"] = 0.2
    assert compare(a, b)[-1] == ("r01", 0.0, 0.2, float("inf"))


def test_best_of_rounds_takes_turns_and_keeps_each_ones_best():
    from sweep import best_of_rounds

    # measured values per call, in the order the calls happen: a, b, slow, then a, b (slow is not measured again)
    values = iter([5.0, 7.0, 80.0, 4.0, 9.0, 6.0, 3.0])
    order = []

    def measure(name, fn):
        order.append(name)
        return next(values)

    best = best_of_rounds({"a": None, "b": None, "slow": None}, measure, rounds=3, slow_ms=50.0)
    assert order == ["a", "b", "slow", "a", "b", "a", "b"]
    assert best == {"a": 4.0, "b": 3.0, "slow": 80.0}


def test_named_targets_say_met_open_or_blocked_by_the_read_floor():
    """bench/sweep.py named_targets: shares of the headline's x.sum(dim=(2, 3)) GB/s (its flat read's in runs that
    did not time it), and a target counts as blocked only where torch's flat read of the same bytes misses it too and
    fusedlse does not pass that read."""
    from sweep import markdown, named_targets, named_times

    def row(shape, nbytes, ms, read_ms, **extra):
        return dict(shape=shape, provider="cuda", bytes=nbytes, median_ms=ms, read_floor_ms=read_ms, **extra)

    rows = [row("headline", 1000, 1.0, 0.98, sum_hw_ms=1.0), row("mid", 250, 0.30, 0.28),
            row("short_rows", 100, 0.20, 0.15), row("skinny", 50, 0.07, 0.1), row("r00", 10, 1.0, 1.0)]
    found, yardstick = named_targets(rows)
    assert yardstick == "x.sum(dim=(2, 3))"
    by_name = {name: (target, share, read_share, status) for name, target, share, read_share, status in found}
    assert set(by_name) == {"headline", "mid", "short_rows", "skinny"}  # no row, no verdict: bf16 and the rest
    assert by_name["headline"] == (0.99, 1.0, 1000 / 0.98 / 1000, "met")
    # 0.83 against 0.92, its read 0.89
    assert by_name["mid"][1:] == (250 / 0.30 / 1000, 250 / 0.28 / 1000, "open, the read floor misses it too")
    assert by_name["short_rows"][3] == "open, the read floor misses it too"  # 0.5 and 0.67 against 0.85
    assert by_name["skinny"][1:] == (50 / 0.07 / 1000, 0.5, "open, past the read floor")  # 0.71: the read no limit
    del rows[0]["sum_hw_ms"]
    rows[1]["median_ms"] = 0.26  # 0.942 of the headline's flat read: past 0.92
    found, yardstick = named_targets(rows)
    assert yardstick == "flat t.sum()"
    assert [f[4] for f in found if f[0] == "mid"] == ["met"]
    rows[1]["median_ms"], rows[1]["read_floor_ms"] = 0.30, 0.25  # ours 0.817, the read 0.98 of the yardstick
    assert [f[4] for f in named_targets(rows)[0] if f[0] == "mid"] == ["open"]
    assert named_targets(rows[1:]) == ([], None)  # without the headline there is no yardstick
    meta = dict(seed=1, device="GPU", torch="2", date="today", commit="abc")
    for r in rows:
        r.update(dims=[1] * 7, dtype="float32", layout="contiguous", floor_ms=r["read_floor_ms"], gemm_floor_ms=0.0,
                 plan="split", predicted_ms=1.0, floor_frac=r["read_floor_ms"] / r["median_ms"])
    text = markdown(meta, rows, ("cuda",))
    assert "| mid | 0.92 | 0.817 | 0.980 | open |" in text
    assert "torch's flat t.sum() on the headline" in text
    # The times table: named problems only, in SWEEP's order, "-" for what the run did not time
    rows.append(dict(rows[1], provider="triton_tuned", median_ms=0.5, floor_frac=0.5))
    del rows[-1]["median_ms"], rows[-1]["floor_frac"]
    rows[0]["sum_hw_ms"] = 0.95
    assert named_times(rows, ("cuda", "triton_tuned")) == [
        ("headline", 1000 / 2**20, 950.0, [1000.0, None]), ("skinny", 50 / 2**20, None, [70.0, None]),
        ("short_rows", 100 / 2**20, None, [200.0, None]), ("mid", 250 / 2**20, None, [300.0, None])]
    text = markdown(meta, rows, ("cuda", "triton_tuned"))
    assert "| headline | 0.0 | 950.0 | 1000.0 | - |" in text and "| r00 | 0.0 |" not in text


def test_sweep_lists_losses_and_rivals_within_the_close_margin():
    """bench/sweep.py: a shape where a rival is faster is a loss; one where the fastest rival takes at most
    CLOSE_RIVAL_MARGIN more time is listed as close; farther rivals, and shapes fusedlse did not run, are neither."""
    from sweep import CLOSE_RIVAL_MARGIN, fastest_rivals, losses, markdown

    times = {"lost": (1.0, 0.9, 2.0), "close": (1.0, 1.0 + CLOSE_RIVAL_MARGIN / 2, 1.5), "far": (1.0, 1.5, 1.2),
             "alone": (1.0, None, None)}
    rows = []
    for shape, (ours, shortcut, tuned) in times.items():
        for provider, ms in (("cuda", ours), ("torch_shortcut", shortcut), ("triton_tuned", tuned)):
            rows.append(dict(shape=shape, provider=provider, median_ms=ms, dims=[1] * 7, dtype="float32",
                             layout="contiguous", bytes=1, floor_ms=0.5, read_floor_ms=0.5, gemm_floor_ms=0.0,
                             plan="split", predicted_ms=1.0, floor_frac=0.5 / ms if ms else 0.0))
    assert fastest_rivals(rows) == {"lost": ("torch_shortcut", 0.9), "close": ("torch_shortcut", 1.025),
                                    "far": ("triton_tuned", 1.2)}
    assert losses(rows) == [("lost", "torch_shortcut", 1.0 / 0.9)]
    text = markdown(dict(seed=1, device="GPU", torch="2", date="today", commit="abc"), rows,
                    ("cuda", "torch_shortcut", "triton_tuned"))
    assert "slower than a rival: 1\n- lost: torch_shortcut is 1.11x faster" in text
    assert "more time than fusedlse CUDA: 1\n- close: torch_shortcut, 1.025x fusedlse's time\n" in text


def test_envelope_grids_straddle_the_planners_lines():
    """bench/strategies.py --grid: each grid of ENVELOPE_GRIDS, all of its layout, holds problems on both sides of
    the line csrc/plan.cpp draws there on the H200, so that forcing every option measures it: the fused launch and
    the split strategy on medium_planes, the channel-rows reader and torch's reduction on channels_last and
    small_channels_last, the channel-rows reader (its pixel-vector walk), the plane-lanes reader and torch's on
    tiny_channels_last, the channel-rows reader and
    torch's on float64_channels_last, those two and the fused launch on few_planes_channels_last, the narrow
    epilogue, the tiled one and cuBLAS's on narrow_columns, the gemv epilogue and every other on few_rows."""
    from fusedlse_cuda.planning import plan_for
    from problems import ENVELOPE_GRIDS
    from test_plan import H200, problem

    # {grid: (its layout, the plan's field the line is drawn in, the values on its two sides)}; "reader" counts the
    # fused launch as "fused".
    sides = {"medium_planes": ("contiguous", "reader", {"fused", "plane_lanes"}),
             "channels_last": ("channels_last", "reader", {"channel_rows", "torch_sum"}),
             "small_channels_last": ("channels_last", "reader", {"channel_rows", "torch_sum"}),
             "tiny_channels_last": ("channels_last", "reader", {"channel_rows", "plane_lanes", "torch_sum"}),
             "float64_channels_last": ("channels_last", "reader", {"channel_rows", "torch_sum"}),
             "few_planes_channels_last": ("channels_last", "reader", {"channel_rows", "torch_sum", "fused"}),
             "narrow_columns": ("contiguous", "epilogue", {"narrow_lse", "tiled_lse", "cublas_lse"}),
             "few_rows": ("contiguous", "epilogue", {"gemv_lse", "tiled_lse", "cublas_lse", "rows_lse",
                                                     "narrow_lse"})}
    for grid, problems in ENVELOPE_GRIDS.items():
        grid_layout, field, expected = sides[grid]
        chosen = set()
        for (batch, c_in, height, width, c_out, kh, kw), dtype, layout in problems.values():
            assert layout == grid_layout
            element_bytes = torch.empty((), dtype=dtype).element_size()
            shape = problem(batch, c_in, c_out, height, width, element_bytes=element_bytes,
                            layout="planes" if layout == "contiguous" else layout)
            plan = plan_for(dict(shape, kernel_area=kh * kw), H200)
            chosen.add("fused" if field == "reader" and plan["strategy"] == "fused" else plan[field])
        assert chosen == expected, grid
