"""How the CUDA forward runs a problem: the planner's choice (csrc/plan.cpp), for users and for measurements."""
import contextlib
import json

import torch
from torch import Tensor

from .shape import IntOrPair, conv_settings

# The planner's names, in the order of plan::Strategy, plan::Reader and plan::Epilogue (csrc/plan.h).
STRATEGIES = ("fused", "split")
READERS = ("planes", "copy_then_planes", "plane_lanes", "torch_sum", "channel_rows", "in_epilogue")
EPILOGUES = ("tiled_lse", "cublas_lse", "rows_lse", "narrow_lse", "gemv_lse")
# The plane-lanes reader's walks over tiny contiguous planes that follow each other, in the order of
# plan::TinyPlaneWalk: a lane per plane, the run walk adding each element to its plane's sum, summing planes of 1,
# 2, 4 or 8 elements that never straddle a 16-byte vector whole per vector, or tiles of a block's planes staged in
# shared memory, a thread per plane.
WALKS = ("lanes", "runs", "vector_planes", "staged")
# Where a padded forward whose GEMM runs over taps makes that GEMM's weight, in the order of plan::TapWeightWay: by
# fusedlse's kernel ahead of the tap sums, their reader beside it or waiting for it; by that kernel after the tap sums;
# by torch's copy there.
TAP_WEIGHT_WAYS = ("ahead_beside", "ahead_waits", "after", "copy")


def explain(x: Tensor, weight: Tensor, *, stride: IntOrPair = 1, padding: IntOrPair = 0,
            output_padding: IntOrPair = 0, dilation: IntOrPair = 1, groups: int = 1) -> dict:
    """The plan ``fusedlse_cuda.forward(x, weight, ..., stride=..., padding=..., ...)`` runs, and why. The plan
    depends on x's sizes, dtype and layout, C_out (from ``weight`` and ``groups``), the settings and the device; not
    on the values or biases. x, weight and the settings are checked as forward checks them (4-D, sizes that agree,
    one floating dtype, one device, settings nn.ConvTranspose2d accepts, an output padding leaves): no plan for a call
    it refuses.

    Returns a dict, with ``groups`` (the setting; groups > 1 takes the plans groups 1 would, its W.sum zero between
    groups and summed from the grouped weight, never the weight itself):
        strategy: ``"fused"`` (one launch reads x and runs the epilogue) or ``"split"`` (a reader writes the sums,
            W.sum is summed from the weight's taps, or is the weight itself (``weight_sum``), then ``epilogue``);
            ``"cropped"`` for padding > 0 (per-tap sums of x, then a GEMM over them or over each plane's cells):
            then only ``tap_sums`` (``"keep_gemm"``: one GEMM of x's planes by a 0/1 matrix of the elements each tap
            keeps, in x's dtype on the tensor cores with float32 sums, for float16 and bfloat16 x whose planes are
            each one run of memory, where the tap kernels' rows walk would run its GEMM over taps (not fewer cells),
            kernels of at most 32 taps, planes of 16 to 8192 elements (16-byte aligned where over 1024) and 8192
            planes or more, its GEMM then over the taps; ``"small_planes"``: a thread per plane, for planes of at
            most 64 elements in any layout, with ``plane_loads`` (``"vectors"``: the aligned 16-byte vectors around
            each plane, where its rows are contiguous with gaps of under 32 bytes between them, every plane starts
            alike in a vector, they hold at most 64 elements and number at most half the plane's elements (whole
            contiguous planes) or a quarter (planes read across a lead or gaps: in effect 16-bit types); else
            ``"elements"``, one load each);
            ``"staged_planes"``: a block per tile of planes copied into shared memory by coalesced loads, then a
            thread per cell and plane, for more planes than the tap kernels' combining warps
            take in one round, of 65 to 1024 elements whose rows (up to 256 elements a plane) or channels are
            contiguous;
            ``"kernels"``: fusedlse's tap kernels, a warp per run of a plane's rows, for x whose rows
            are contiguous; ``"channel_kernels"``: the same kernels walking runs of rows of up to 32 neighbouring
            channels, for x whose channels are contiguous (channels_last and its slices), with ``channel_walk``
            (``"rows"``: row by row, for float32 where a lane takes one channel of rows of 64 or more; else
            ``"flat"``: a lane's loads run on into the next rows); for both, ``combine`` (how each plane's runs and
            taps are added after the reader: ``"lane_groups"``, a plane by a group of lanes, as few as give every
            warp resident on the device a group of planes and cover a plane's runs, where no shares are made and the
            planes are many or the cells asked; else ``"warp_per_plane"``);
            ``"aten"``: ATen's
            reductions over each plane's border pieces and fusedlse's readers over its middle, for x with neither
            contiguous, rows narrower than 16 elements with gaps wider than a quarter of a row between them, and
            paddings that make a tap lose more than 8 rows or columns at a border or kernels of more than 16 taps a
            side), ``gemm`` (``{"strategy": "tap_shares", "shares_added":
            ...}``: each plane's share of the GEMM by the tap kernels, where the weight is small beside x, the planes
            fit one round of the combining warps and a plane's shares take at most 4 trips of weight loads, the shares
            added over channels by the logsumexp's launch (``"in_lse"``) or, where C_in * C_out is large, by torch's
            sum first (``"torch_sum"``); otherwise the plan of the GEMM run as a padding-0 forward of 1 x 1 planes,
            in this same form (a ``"split"`` plan over rows of sums runs its epilogue alone, and its predicted_us is
            that epilogue's: the GEMM's rows are the sums already),
            with ``gemm_over`` (``"elements"``: x's own elements where they lie, each element's weight the sum of
            the taps' that keep it, for CUDA x of 8 MiB or more whose batches are each one run of memory (in any
            order of C, H and W; for float32 and float64 the batches following each other too), groups 1, every
            element kept by some tap and planes at most 64 rows and columns, where the weight over elements is small
            beside x and the GEMM's plan (for 16-bit x the narrow epilogue loading x itself) is predicted near the
            padding-0 forward's time or below the tap readers', or the cells are x's elements anyway; the tap sums a
            backward needs then take a pass of their own; ``"cells"``: each plane's cells, pairs of row and column
            segments that some tap keeps, each cell's weight the sum of the taps' that keep it, where there are fewer
            cells than taps, or as many and each one element of x, and that weight is built in one pass over the
            weight (kernels of at most 32 taps) or the weight is small beside x; else ``"taps"``),
            ``gemm_depth`` (C_in times the elements, cells or taps per plane), ``cells_in_x`` (true where the GEMM
            runs over x's elements, or over cells that are each one element of x, 1 x 1 planes say, or 2 x 2 ones
            under a 2 x 2 kernel at padding 1: a forward that keeps no sums for a backward then reads no tap sums,
            its GEMM's rows being x's values, widened once for 16-bit x unless the narrow epilogue loads them, and
            ``tap_sums`` names the path of a forward that keeps them) and
            ``whole_planes`` (true where no tap crops a plane of several elements in part and the GEMM runs over
            cells: each plane's sum, its one cell, by the padding-0 readers, and the tap sums a backward needs added
            from the cells)) and ``why``; ``"cpu"`` for CPU tensors.
        reader: who reads x: ``"planes"`` (in place: contiguous planes or channels_last), ``"copy_then_planes"``
            (x is copied first: ``copies_x`` is True), ``"plane_lanes"`` (1 to 32 lanes per plane or piece of
            one, any strides, in place: planes whose W is contiguous, and tiny planes of any layout but
            channels-last ones of pixels under 64 bytes or planes under 32, which torch reads faster; tiny planes
            that follow each other in memory, of the sizes where that is faster, ``problem["plane_runs"]``: a
            thread per few of them, loaded 16 bytes at a time; contiguous planes of any size, 16 bytes a load
            (from the first aligned vector of planes of 2048 elements and more that start inside one), at most
            128 of them cut into pieces), ``"torch_sum"`` (torch's ``x.sum((2, 3))``, in place: larger planes of
            channels-last x and other layouts, and those tiny channels-last planes), ``"channel_rows"``
            (channels-last x a pixel of C channels at a time, in place: at least 400 pixels per plane (256 for
            pixels of 32 to 800 bytes), and up to 128 channels (256 in float64), or more where its pixels follow each
            other (``problem["pixels_follow"]``) in 16- or 32-bit x: read then 16 bytes a load, where its items make
            64 blocks or more (``kChannelVectorsMinBlocks``), or in float64 x whose
            pixels are whole aligned 128-byte lines (C a multiple of 16): a thread per batch, chunk of pixels and
            16-byte vector of a pixel; and planes of 2 to
            144 pixels whose pixels are whole aligned 16-byte vectors (``problem["pixel_vectors"]``) of 64 bytes or
            more, or of any size on planes of up to 4 pixels, with 16K threads' work or more: a thread per batch and
            vector of a pixel, the plane summed in registers), ``"in_epilogue"`` (no reader: x's planes of one
            element, float32 or float64, are the sums, and the tiled epilogue loads them where they lie, any batch
            and channel strides, saving them as the forward's sums: its GEMM runs while x is read; or float64 planes
            of 2 to 32 elements in contiguous rows of 8 to 32, C_in up to 32, which the tensor-core tile sums itself,
            a row tile's planes before its GEMM, where it takes the GEMM in one column run without split-K;
            ``epilogue`` is then ``"tiled_lse"``; or, where the epilogue is ``"narrow_lse"`` over one channel range
            (``narrow_k_splits`` 1), x's planes of 2 to 8 elements in any dtype whose rows are strided or whose
            layout is neither contiguous planes nor channels-last, which its lanes sum where they lie, or float16 and
            bfloat16 x's planes of one element in any layout, which its lanes load as sums, instead of loading sums:
            no sums written and read back, and none made where the call keeps none for a backward).
        epilogue: the split strategy's GEMM + biases + logsumexp: ``"tiled_lse"`` (one kernel, a tiled GEMM whose
            logits go straight into each row's logsumexp: no [B, C_out] tensor; on the bfloat16 tile, ``tiled_tile``
            6, a first launch cuts W.sum into its pieces) or ``"cublas_lse"`` (cuBLAS's GEMM
            writes the logits, one kernel takes the logsumexp) or ``"rows_lse"`` (one kernel, a group of lanes per
            row computing its logits a chunk of columns at a time: C_in up to 16, and W.sum with the biases within a
            block's 48 KiB of shared memory: float32 C_out up to 6072 at C_in 1, 600 at 16) or ``"narrow_lse"``
            (one kernel, a group of lanes per few rows splitting their channels, each lane holding every logit of
            its rows: C_out up to 32, any C_in, W.sum staged in shared memory a range of channels at a time:
            ``narrow_k_splits``; chosen only where the rows epilogue does not apply) or ``"gemv_lse"`` (one kernel, a
            block per row, each logit the row's sums dotted with a column of W.sum read from L2: few rows, where
            one launch with a trip or two to L2 beats the tiled kernel's steps and every block's read of W.sum
            costs little).
        predicted_us, fused_us, split_us: the cost model's times for the choice and both strategies; tiled_us,
            cublas_us, rows_us, narrow_us, gemv_us: the epilogue's part of split_us with each epilogue (rows_us and
            narrow_us None where that epilogue does not apply).
        tiled_k_splits: the channel ranges the tiled epilogue would cut its GEMM into (split-K: 1 for none; more
            for thin GEMMs over many channels, whose few tiles would each run a long chain of steps: a block per
            tile and range, their partial logits added in range order by a second launch).
        tiled_tile: the tiled epilogue's tile, an index into csrc/cuda/tuning.h's kGemmTiles: 0-3 SIMT tiles by C_out,
            4 the thin one (few tiles), 5 float64 on tensor cores, 6 float16 and bfloat16 x on bfloat16 tensor cores
            (three products over pieces of the float32 factors, on a device whose ``bf16_gflops`` is 8 times its
            ``fp32_gflops`` or more, where its tiles fill the device and C_in's pieces for 128 rows fit half a
            multiprocessor's shared memory).
        narrow_k_splits: the equal channel ranges the narrow epilogue would cut its GEMM into (1 for none; more
            where its W.sum, transposed, does not fit 96 KiB of shared memory: a block per group of rows and range,
            their partial logits added in range order by a second launch).
        gemv_threads, gemv_trips: the gemv epilogue's block per row, 256 threads or 512 where those walk the row's
            GEMM in fewer trips of loads (each thread's channels of a column, 32 in flight, 16 in float64, over every
            pass of its columns), and those trips; gemv_us counts 256 threads' trips either way.
        cublas_k_splits: the equal channel slices cuBLAS's epilogue would cut its GEMM into (1 for none; more where
            cuBLAS's output tiles are fewer than the multiprocessors: one strided batched GEMM writes each slice's
            partial logits, added in slice order by the logsumexp's launch). A float32 GEMM with TF32 allowed
            (``torch.backends.cuda.matmul.allow_tf32``) runs as three TF32 products instead, never sliced.
        cublas_factors: how cuBLAS's epilogue multiplies this call's sums by W.sum where the plan takes it (for
            padding > 0, the GEMM under ``gemm``): ``"bf16_pieces"`` (16-bit x, rows and C_out each 256 or more, C_in
            too or C_in 32 or more in a GEMM of 2^27 multiply-adds or more, one channel slice, on a device of compute
            capability 8.0, 9.0 or 10.0 (A100, H100, H200: the device's ``bf16_gflops`` 8 times its ``fp32_gflops``
            or more, which the cost model counts them at): each float32 factor cut into two bfloat16 pieces, and one
            GEMM of three products on the tensor cores with float32 accumulation, about 2^-16 of |sums| @ |W.sum|
            off, far below 16-bit rounding; 2.9x faster than SGEMM on r06's [512, 2048] x [2048, 1024] on an H100) or
            ``"as_is"`` (float32 or float64 factors as they are).
        x_loads: how fusedlse's readers load x: ``"evict_first"`` (up to 4.5 times the device's L2: the L2's
            dirty lines stay rather than being written back during the read) or ``"cached"`` (larger x, which
            reads faster so). Whole short rows of the fused launch are loaded evict-first either way.
        weight_sum: how the split strategy gets W.sum((2, 3)): ``"weight"`` (a 1 x 1 kernel of float32 or
            float64, contiguous: the weight itself, with no pass over it) or ``"summed"`` (its taps added, by a
            reader or in the reader's launch).
        why: one sentence. problem, device: what the planner saw (layout, plane_runs, planes_aligned,
            pixels_follow, pixel_vectors, SMs, L2, bandwidth, ...).
    """
    settings = conv_settings(stride, padding, output_padding, dilation, groups)
    return json.loads(torch.ops.fusedlse.explain(x, weight, *settings.values()))


def plan_for(problem: dict, device: dict) -> dict:
    """The planner alone, for any device: problem = {batch, in_channels, out_channels, height, width,
    element_bytes, layout, kernel_area (optional, kH * kW, default 1), plane_runs (optional, default False: tiny
    contiguous planes that follow each other in memory), planes_aligned (optional: in the "planes" layout, every plane
    starts on a 16-byte boundary; default True there where a plane's bytes are a multiple of 16, as in a contiguous
    x torch allocated, False in other layouts), pixels_follow (optional: in the "channels_last" layout, each batch's
    pixels follow each other, pixel stride C; default True there, False in other layouts), pixel_vectors (optional:
    besides, each pixel is whole 16-byte vectors from a 16-byte boundary; default True where pixels follow and a
    pixel's bytes are a multiple of 16, as in a channels-last x torch allocated)} (layout: "planes",
    "channels_last", "strided_rows" or "other");
    device = {multiprocessors, l2_bytes, shared_bytes_per_sm, warps_per_sm, read_gbps, fp32_gflops, bf16_gflops
    (optional, default 0: the bfloat16 tensor cores' dense rate with float32 accumulation, which cuBLAS's GEMM over
    bfloat16 pieces for 16-bit x needs)}. Same result as explain() for the same inputs."""
    layouts = ("planes", "channels_last", "strided_rows", "other")
    sizes = [problem[k] for k in ("batch", "in_channels", "out_channels", "height", "width", "element_bytes")]
    props = [float(device[k]) for k in ("multiprocessors", "l2_bytes", "shared_bytes_per_sm", "warps_per_sm",
                                        "read_gbps", "fp32_gflops")] + [float(device.get("bf16_gflops", 0))]
    plane_bytes = problem["height"] * problem["width"] * problem["element_bytes"]
    extra = [layouts.index(problem["layout"]), problem.get("kernel_area", 1), int(problem.get("plane_runs", False)),
             int(problem.get("planes_aligned", problem["layout"] == "planes" and plane_bytes % 16 == 0)),
             int(problem.get("pixels_follow", problem["layout"] == "channels_last"))]
    pixel_bytes = problem["in_channels"] * problem["element_bytes"]
    extra.append(int(problem.get("pixel_vectors", bool(extra[-1]) and pixel_bytes % 16 == 0)))
    return json.loads(torch.ops.fusedlse.plan(sizes + extra, props))


@contextlib.contextmanager
def _forcing(force, values: tuple, unforced: tuple):
    """force(*values) for the block, force(*unforced) after it however the block ends: the overrides below are the
    whole process's."""
    force(*values)
    try:
        yield
    finally:
        force(*unforced)


def forced_plan(strategy: str, reader: str = None, epilogue: str = None):
    """For measurements and tests only: inside the block every CUDA forward, in every thread, runs `strategy`
    (and, for "split", `reader` and `epilogue`; None leaves that to the planner) instead of the planner's choice."""
    forced = (STRATEGIES.index(strategy), -1 if reader is None else READERS.index(reader),
              -1 if epilogue is None else EPILOGUES.index(epilogue))
    return _forcing(torch.ops.fusedlse._force_plan, forced, (-1, -1, -1))


def forced_channel_slices(slices: int):
    """For measurements and tests only: inside the block every channels walk of padding's CUDA tap kernels
    (explain's tap_sums "channel_kernels"), in every thread, cuts C into `slices` slices of ceil(C / slices) channel
    lanes each (clamped to ceil(C / 32) .. C), a warp each, the lanes left over walking further positions. The rule
    takes the count with the fewest warp loads per pixel whose lanes load 48 bytes of neighbouring channels or more
    (or all of C)."""
    if not isinstance(slices, int) or slices < 1:
        raise ValueError(f"forced_channel_slices: slices must be a positive int, got {slices!r}")
    return _forcing(torch.ops.fusedlse._force_channel_slices, (slices,), (0,))


def forced_tap_min_run_bytes(run_bytes: int):
    """For measurements and tests only: inside the block padding's CUDA tap reader (explain's tap_sums "kernels" and
    "channel_kernels"), in every thread, cuts each plane (or slice of channels) into runs of rows of at least
    `run_bytes` bytes of x where the plane is longer (0: no least run, only as many runs as the resident warps ask for),
    a warp each, bypassing the waves rule (the rule weighs runs from 64 KiB down to 8 KiB)."""
    if not isinstance(run_bytes, int) or isinstance(run_bytes, bool) or run_bytes < 0:
        raise ValueError(f"forced_tap_min_run_bytes: run_bytes must be an int of 0 or more, got {run_bytes!r}")
    return _forcing(torch.ops.fusedlse._force_tap_min_run_bytes, (run_bytes,), (-1,))


def forced_tap_shares(shares: bool):
    """For measurements and tests only: inside the block every padded CUDA forward through the tap kernels (explain's
    tap_sums "kernels" and "channel_kernels"), in every thread, adds each plane's share of the cropped GEMM as the
    kernels combine its taps wherever the shares' bytes allow (True), or never (False: the planner's epilogue over the
    taps or cells), bypassing the rule that keeps the shares to one round of the combining warps and a short loop of
    weight loads a plane."""
    if not isinstance(shares, bool):
        raise ValueError(f"forced_tap_shares: shares must be a bool, got {shares!r}")
    return _forcing(torch.ops.fusedlse._force_tap_shares, (int(shares),), (-1,))


def forced_element_gemm(elements: bool):
    """For measurements and tests only: inside the block every padded CUDA forward, in every thread, runs its GEMM over
    x's elements where they lie (explain's gemm_over "elements") wherever x's layout and the settings allow it (True),
    or never (False), bypassing the rule's bounds on x's size, the weight's size and the predicted times."""
    if not isinstance(elements, bool):
        raise ValueError(f"forced_element_gemm: elements must be a bool, got {elements!r}")
    return _forcing(torch.ops.fusedlse._force_element_gemm, (int(elements),), (-1,))


def forced_tap_weight_way(way: str):
    """For measurements and tests only: inside the block every padded CUDA forward whose GEMM runs over taps (explain's
    gemm_over "taps"), in every thread, makes that GEMM's weight `way` (one of TAP_WEIGHT_WAYS) instead of the rule's
    (torch's copy whatever the way where a side of the kernel has more than 64 taps). The weight is the same every
    way."""
    if way not in TAP_WEIGHT_WAYS:
        raise ValueError(f"forced_tap_weight_way: way must be one of {TAP_WEIGHT_WAYS}, got {way!r}")
    return _forcing(torch.ops.fusedlse._force_tap_weight_way, (TAP_WEIGHT_WAYS.index(way),), (-1,))


def forced_keep_gemm(keep: bool):
    """For measurements and tests only: inside the block every padded CUDA forward of 16-bit x, in every thread, takes
    its tap sums by one GEMM over a 0/1 keep matrix (explain's tap_sums "keep_gemm") wherever x's layout and the kernel
    allow it and its planes are at most 8192 elements (True), or never (False), bypassing the rule's other bounds: the
    path it replaces, the smallest planes, plane counts and alignment. Longer planes never take it: the tensor cores'
    float32 sums over them drift (bfloat16 planes of 4.2M elements 2% off, docs/limits.md section 113)."""
    if not isinstance(keep, bool):
        raise ValueError(f"forced_keep_gemm: keep must be a bool, got {keep!r}")
    return _forcing(torch.ops.fusedlse._force_keep_gemm, (int(keep),), (-1,))


def forced_tap_stage(stage: bool):
    """For measurements and tests only: inside the block padding's CUDA tap reader (explain's tap_sums "kernels"), in
    every thread, takes rows of more than one element with narrow gaps between them through each warp's stage in
    shared memory wherever a row fits it (True: rows of whole 16-byte vectors too), or never (False: the span walk's
    16-byte loads of every row), bypassing the rule that stages the rows that are not whole vectors."""
    if not isinstance(stage, bool):
        raise ValueError(f"forced_tap_stage: stage must be a bool, got {stage!r}")
    return _forcing(torch.ops.fusedlse._force_tap_stage, (int(stage),), (-1,))


def forced_tap_middle_by_span(by_span: bool):
    """For measurements and tests only: inside the block padding's CUDA tap reader (explain's tap_sums "kernels"), in
    every thread, sums the middle rows whole and takes each row's border columns off (True; explain's
    "middle_by_span") wherever x's rows follow each other with no gap, a middle column is left and the borders are
    at most 2 columns a side (the walk keeps their sums in registers alone), whole-vector rows too, and takes the
    staged walk's middle rows as the staged span's sum less the rest wherever a middle column is left (the stage's
    rows; explain's "middle_by_span" too), or neither ever (False: the stage or the span walk, as their rule says,
    each adding its middle columns), bypassing the rules that keep the first to rows of 256 bytes or more that are not
    whole 16-byte vectors, with 4 elements or more per border column, and the second to rows of 8 elements or more
    per border column."""
    if not isinstance(by_span, bool):
        raise ValueError(f"forced_tap_middle_by_span: by_span must be a bool, got {by_span!r}")
    return _forcing(torch.ops.fusedlse._force_tap_middle_by_span, (int(by_span),), (-1,))


def forced_tap_combine_lanes(lanes: int):
    """For measurements and tests only: inside the block padding's CUDA combine of per-tap sums without shares
    (explain's combine), in every thread, takes `lanes` lanes a plane (32: "warp_per_plane"; 1, 2, 4, 8 or 16:
    "lane_groups", raised where a plane's runs need more), bypassing the rule (plan::tap_combine_lanes). The sums are
    the same bitwise either way."""
    if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes not in (1, 2, 4, 8, 16, 32):
        raise ValueError(f"forced_tap_combine_lanes: lanes must be 1, 2, 4, 8, 16 or 32, got {lanes!r}")
    return _forcing(torch.ops.fusedlse._force_tap_combine_lanes, (lanes,), (-1,))


def forced_plane_lanes_persistent(persistent: bool):
    """For measurements and tests only: inside the block every launch of the plane-lanes reader (explain's reader or
    split_reader "plane_lanes", and the W.sum it reads), in every thread, takes a persistent grid (True: at most the
    blocks the device holds at once, each taking turns over the items, the rule before docs/limits.md section 93) or a
    block a turn (False: the rule). The sums are the same bitwise either way."""
    if not isinstance(persistent, bool):
        raise ValueError(f"forced_plane_lanes_persistent: persistent must be a bool, got {persistent!r}")
    return _forcing(torch.ops.fusedlse._force_plane_lanes_persistent, (int(persistent),), (-1,))


def forced_plane_lanes_pieces(pieces: int):
    """For measurements and tests only: inside the block every launch of the plane-lanes reader, in every thread, cuts
    each plane into `pieces` pieces (at most one per load of a lane), a group of lanes each: in one block where they
    are at most its groups (rounded down to a power of two), the block adding them; otherwise a second launch adds
    them. The rule cuts planes only where they are too few to give every resident group four items; docs/limits.md
    section 93 asks whether r25's columns (a warp a plane of 333 elements) read faster in pieces."""
    if not isinstance(pieces, int) or isinstance(pieces, bool) or pieces < 1:
        raise ValueError(f"forced_plane_lanes_pieces: pieces must be a positive int, got {pieces!r}")
    return _forcing(torch.ops.fusedlse._force_plane_lanes_pieces, (pieces,), (0,))


def forced_walk(walk: str):
    """For measurements and tests only: inside the block every CUDA read of tiny contiguous planes that follow each
    other, in every thread, takes `walk` (one of WALKS) instead of the planner's choice, where it applies: otherwise
    "vector_planes" (planes that do not tile the 16-byte vectors, or of 8-byte elements) and "staged" (planes of more
    than 64 bytes, or runs of fewer than 4096 planes) are "runs", and "runs" of 8-byte elements is "lanes". x of planes
    of one element is read by torch under "lanes" unless the plane-lanes reader is forced too (forced_plan)."""
    if walk not in WALKS:
        raise ValueError(f"forced_walk: walk must be one of {WALKS}, got {walk!r}")
    return _forcing(torch.ops.fusedlse._force_walk, (WALKS.index(walk),), (-1,))
