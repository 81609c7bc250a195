"""The tuned Triton forward: the strongest honest Triton rival to fusedlse's CUDA path.

Same arguments, checks (the op library's own, torch.ops.fusedlse.check_forward) and numerics as
fusedlse_cuda.forward: float32 accumulation (float64 for float64), an IEEE (not TF32) dot, output in x's dtype.
Two launches, following the seed's rules for fused Triton code (docs/design.md): each kernel has one grid over
its output and one (offsets, mask) pair that every fused step uses; what needs other indexing is its own kernel.

1. Partial sums of x over H*W, in place for every layout. One kernel per layout, one launched per call:
   _row_partials (each (b, c) plane flattens to one stride: contiguous, storage offsets, odd H*W; or, through
   FLAT=False, any strides) and _channels_last_partials (channels adjacent). The grid is (row or channel blocks,
   splits): rows are split until the device's multiprocessors have enough programs, short rows are packed
   BLOCK_R to a program. Full tiles load without a position mask (so loads stay 16 bytes wide), the tail with one.
   Output: partials [splits, B*C_in], accumulation dtype.
2. _gemm_lse: grid (batch tiles, C_out tiles, C_in tiles). A program sums its rows' partials (fixed split
   order), folds weight.sum((2,3)) for its tile, and multiplies. With several C_in tiles, the last of them
   (an atomic ticket) adds the products in tile order; the last C_out tile of a batch tile combines the
   per-tile logsumexp statistics in tile order and writes out. Tickets are each call's own, zeroed. Results are
   therefore bitwise identical run to run for a given configuration; the autotuner's choice is cached on disk
   (cache_results), so later processes on the same machine pick the same configuration.

Only _row_partials and _channels_last_partials are autotuned: they are where the time goes. Their keys are the
power-of-two buckets of row count and split length (dtype is part of every Triton autotune key), and
`_prune` keeps 2 to 6 of the configurations for a given shape, so a new shape costs a few benchmark runs.
"""
import contextlib
import inspect
from typing import Optional

import torch
import triton
import triton.language as tl

import fusedlse_cuda  # noqa: F401  (registers torch.ops.fusedlse.check_forward)

# Rows of at most this many bytes are not split: programs then pack several whole rows.
WHOLE_ROW_BYTES = 16 * 1024
# Programs per multiprocessor wanted in the partial-sum grid (several waves, so a slow program is not the tail).
PROGRAMS_PER_SM = 16
# The smallest piece of a row worth a program.
MIN_CHUNK_BYTES = 8 * 1024
# At most this many pieces per row: the GEMM program reads each row's pieces back, SPLIT_BLOCK at a time.
MAX_SPLITS = 128
# The GEMM program sums a kernel's taps this many at a time (the next power of two of kH*kW where that is fewer).
MAX_TAP_BLOCK = 16


# Triton before 3.3 has no on-disk cache of autotuning results; there the choice is remade once per process.
_CACHE = {"cache_results": True} if "cache_results" in inspect.signature(triton.autotune).parameters else {}


def _row_configs():
    configs = []
    for block_p in (128, 256, 512, 1024, 2048, 4096, 8192):
        for block_r in (1, 2, 4, 8, 16, 32):
            if block_p * block_r in (2048, 4096, 8192):
                for warps in (4, 8):
                    configs.append(triton.Config({"BLOCK_R": block_r, "BLOCK_P": block_p}, num_warps=warps))
    return configs


def _channels_last_configs():
    return [triton.Config({"BLOCK_P": block_p}, num_warps=warps) for block_p in (16, 32, 64, 128) for warps in (4, 8)]


def _prune(configs, named_args, **kwargs):
    """Keep the tiles that fit the split: whole (packed) rows for short ones, one long row per program otherwise."""
    chunk = named_args["chunk"]
    if "BLOCK_R" not in configs[0].kwargs:  # channels_last: any position block up to the split's length
        fit = [c for c in configs if c.kwargs["BLOCK_P"] <= max(16, triton.next_power_of_2(chunk))]
        return fit or configs[:1]
    span = triton.next_power_of_2(chunk)
    if span >= 2048:
        fit = [c for c in configs if c.kwargs["BLOCK_R"] == 1 and c.kwargs["BLOCK_P"] >= 2048]
    else:
        fit = [c for c in configs if c.kwargs["BLOCK_P"] == max(128, span)]
    return fit or configs[:1]


@triton.jit
def _split_bounds(split, chunk, plane, BLOCK_P: tl.constexpr):
    """This split's positions [begin, end), and full_end, where its last whole BLOCK_P tile ends."""
    begin = split * chunk
    end = tl.minimum(begin + chunk, plane)
    return begin, end, begin + ((end - begin) // BLOCK_P) * BLOCK_P


@triton.jit
def _plane_offsets(offs_p, width, stride_h, stride_w, FLAT: tl.constexpr):
    """Element offsets of plane positions p = h*W + w within a (b, c) plane."""
    if FLAT:
        return offs_p.to(tl.int64) * stride_w
    return (offs_p // width).to(tl.int64) * stride_h + (offs_p % width).to(tl.int64) * stride_w


@triton.autotune(configs=_row_configs(), key=["rows_bucket", "chunk_bucket"],
                 prune_configs_by={"early_config_prune": _prune}, **_CACHE)
@triton.jit
def _row_partials(
    x_ptr,  # [B, C, H, W]: element (b, c, h, w) at b*stride_b + c*stride_c + h*stride_h + w*stride_w
    partials_ptr,  # [splits, B*C] accumulation dtype
    rows, channels, width, plane, chunk,  # B*C, C, W, H*W, positions per split
    stride_b, stride_c, stride_h, stride_w,
    rows_bucket, chunk_bucket,  # autotune keys only
    FLAT: tl.constexpr,  # stride_h == width * stride_w: position p = h*W + w sits at p * stride_w
    ACC: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_P: tl.constexpr,
):
    split = tl.program_id(1)
    offs_r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    row_ok = offs_r < rows
    r64 = offs_r.to(tl.int64)
    row_start = (r64 // channels) * stride_b + (r64 % channels) * stride_c  # [BLOCK_R]
    begin, end, full_end = _split_bounds(split, chunk, plane, BLOCK_P)
    acc = tl.zeros([BLOCK_R, BLOCK_P], dtype=ACC)
    for p0 in range(begin, full_end, BLOCK_P):
        offs_p = p0 + tl.arange(0, BLOCK_P)
        where = _plane_offsets(offs_p, width, stride_h, stride_w, FLAT)
        acc += tl.load(x_ptr + row_start[:, None] + where[None, :], mask=row_ok[:, None], other=0.0).to(ACC)
    offs_p = full_end + tl.arange(0, BLOCK_P)
    where = _plane_offsets(offs_p, width, stride_h, stride_w, FLAT)
    tail_ok = row_ok[:, None] & (offs_p < end)[None, :]
    acc += tl.load(x_ptr + row_start[:, None] + where[None, :], mask=tail_ok, other=0.0).to(ACC)
    tl.store(partials_ptr + split * rows + offs_r, tl.sum(acc, axis=1), mask=row_ok)


@triton.autotune(configs=_channels_last_configs(), key=["rows_bucket", "chunk_bucket"],
                 prune_configs_by={"early_config_prune": _prune}, **_CACHE)
@triton.jit
def _channels_last_partials(
    x_ptr,  # [B, C, H, W] channels_last: element (b, c, p = h*W + w) at b*stride_b + c + p*stride_p
    partials_ptr,  # [splits, B*C] accumulation dtype
    rows, channels, plane, chunk, channel_blocks,  # B*C, C, H*W, positions per split, cdiv(C, BLOCK_C)
    stride_b, stride_p,
    rows_bucket, chunk_bucket,  # autotune keys only
    EVEN_C: tl.constexpr,  # C % BLOCK_C == 0: no channel mask, so loads stay 16 bytes wide
    ACC: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr,
):
    split = tl.program_id(1)
    batch = tl.program_id(0) // channel_blocks
    offs_c = (tl.program_id(0) % channel_blocks) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = offs_c < channels
    batch_start = batch.to(tl.int64) * stride_b
    begin, end, full_end = _split_bounds(split, chunk, plane, BLOCK_P)
    acc = tl.zeros([BLOCK_P, BLOCK_C], dtype=ACC)
    for p0 in range(begin, full_end, BLOCK_P):
        offs_p = p0 + tl.arange(0, BLOCK_P)
        where = batch_start + offs_p.to(tl.int64)[:, None] * stride_p + offs_c[None, :]
        if EVEN_C:
            acc += tl.load(x_ptr + where).to(ACC)
        else:
            acc += tl.load(x_ptr + where, mask=c_ok[None, :], other=0.0).to(ACC)
    offs_p = full_end + tl.arange(0, BLOCK_P)
    where = batch_start + offs_p.to(tl.int64)[:, None] * stride_p + offs_c[None, :]
    acc += tl.load(x_ptr + where, mask=(offs_p < end)[:, None] & c_ok[None, :], other=0.0).to(ACC)
    tl.store(partials_ptr + split * rows + batch * channels + offs_c, tl.sum(acc, axis=0), mask=c_ok)


@triton.jit
def _gemm_lse(
    partials_ptr,  # [splits, B*C_in] accumulation dtype
    weight_ptr,  # [C_in, C_out, KA] contiguous, x's dtype (KA = kH*kW taps)
    conv_bias_ptr,  # [C_out] x's dtype (read only if HAS_CONV_BIAS)
    bias_ptr,  # C_out elements of x's dtype, element n at n*bias_stride
    zpart_ptr,  # [C_in tiles, B, C_out] accumulation dtype: per-C_in-tile products (if several tiles)
    stats_ptr,  # [B, C_out tiles, 2] accumulation dtype: per-tile row max and sum of exp
    tickets_ptr,  # [batch tiles * C_out tiles + batch tiles] int32, zeroed for this launch
    out_ptr,  # [B] x's dtype
    batch, channels, c_out, splits, bias_stride, out_area, KA,  # out_area = H_out * W_out
    HAS_CONV_BIAS: tl.constexpr, USE_DOT: tl.constexpr, ACC: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_CO: tl.constexpr, BLOCK_CI: tl.constexpr,
    SUB_CI: tl.constexpr, SPLIT_BLOCK: tl.constexpr, TAP_BLOCK: tl.constexpr,
):
    b_tile, co_tile, ci_tile = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    co_tiles, ci_tiles = tl.num_programs(1), tl.num_programs(2)
    offs_b = b_tile * BLOCK_B + tl.arange(0, BLOCK_B)
    offs_co = co_tile * BLOCK_CO + tl.arange(0, BLOCK_CO)
    b_ok, co_ok = offs_b < batch, offs_co < c_out
    rows = batch * channels
    offs_s = tl.arange(0, SPLIT_BLOCK)
    ci_end = tl.minimum((ci_tile + 1) * BLOCK_CI, channels)
    # This program's share of the GEMM, SUB_CI input channels at a time:
    # sums [BLOCK_B, SUB_CI] @ weight.sum((2,3)) [SUB_CI, BLOCK_CO].
    z = tl.zeros([BLOCK_B, BLOCK_CO], dtype=ACC)
    for ci0 in range(ci_tile * BLOCK_CI, ci_end, SUB_CI):
        offs_ci = ci0 + tl.arange(0, SUB_CI)
        ci_ok = offs_ci < ci_end
        # Row sums from the partials, SPLIT_BLOCK splits per load (few round trips when rows are split many ways).
        s_where = offs_b[None, :, None] * channels + offs_ci[None, None, :]
        s_mask = b_ok[None, :, None] & ci_ok[None, None, :]
        sums = tl.zeros([BLOCK_B, SUB_CI], dtype=ACC)
        for s0 in range(0, splits, SPLIT_BLOCK):
            split = s0 + offs_s
            sums += tl.sum(tl.load(partials_ptr + split[:, None, None] * rows + s_where,
                                   mask=(split < splits)[:, None, None] & s_mask, other=0.0), axis=0)
        # A channel's taps for the C_out tile are contiguous in weight: loaded as [SUB_CI, BLOCK_CO, TAP_BLOCK],
        # TAP_BLOCK taps at a time (a 5x5 kernel's 32 at once needed 272 KB of shared memory in float32, more than
        # an H200 has: r08 and r56 of the sweep failed to compile).
        w_row = offs_ci[:, None, None].to(tl.int64) * c_out * KA + offs_co[None, :, None] * KA
        w_ok = ci_ok[:, None, None] & co_ok[None, :, None]
        wsum = tl.zeros([SUB_CI, BLOCK_CO], dtype=ACC)
        for t0 in range(0, KA, TAP_BLOCK):
            taps = t0 + tl.arange(0, TAP_BLOCK)
            w_mask = w_ok & (taps < KA)[None, None, :]
            wsum += tl.sum(tl.load(weight_ptr + w_row + taps[None, None, :], mask=w_mask, other=0.0).to(ACC), axis=2)
        if USE_DOT:
            z += tl.dot(sums, wsum, input_precision="ieee", out_dtype=ACC)
        else:
            z += tl.sum(sums[:, :, None] * wsum[None, :, :], axis=1)
    z_mask = b_ok[:, None] & co_ok[None, :]
    z_where = offs_b[:, None] * c_out + offs_co[None, :]
    b_tiles = tl.num_programs(0)
    finisher = ci_tiles == 1  # whether this program holds its (batch tile, C_out tile)'s complete product
    if ci_tiles > 1:
        tl.store(zpart_ptr + ci_tile * batch * c_out + z_where, z, mask=z_mask)
        # acq_rel: the stores above are visible to whoever takes the last ticket, and it sees everyone's.
        ticket = tl.atomic_add(tickets_ptr + b_tile * co_tiles + co_tile, 1)
        finisher = ticket == ci_tiles - 1
        if finisher:
            z = tl.zeros([BLOCK_B, BLOCK_CO], dtype=ACC)
            for t in range(0, ci_tiles):  # tile order, whoever finished first: deterministic
                z += tl.load(zpart_ptr + t * batch * c_out + z_where, mask=z_mask, other=0.0, cache_modifier=".cg")
            tl.atomic_xchg(tickets_ptr + b_tile * co_tiles + co_tile, 0)
    if finisher:
        bias = tl.load(bias_ptr + offs_co * bias_stride, mask=co_ok, other=0.0).to(ACC)
        if HAS_CONV_BIAS:
            bias += tl.load(conv_bias_ptr + offs_co, mask=co_ok, other=0.0).to(ACC)
        # Divided by the integer area in ACC: a Python float scale would reach the kernel as a float32.
        logits = tl.where(z_mask, z / out_area + bias[None, :], float("-inf"))
        row_max = tl.max(logits, axis=1)
        row_max = tl.where(b_ok, row_max, 0.0)
        # torch.logsumexp's semantics for infinities: where a logit equals the max (+inf included) its term is
        # exp(0), not exp(inf - inf) = NaN; an all -inf row gives -inf + log(n) = -inf. NaN still propagates.
        shifted = tl.where(logits == row_max[:, None], 0.0, logits - row_max[:, None])
        row_sum = tl.sum(tl.exp(shifted), axis=1)
        if co_tiles == 1:
            result = 10.0 * (row_max + tl.log(tl.where(b_ok, row_sum, 1.0)))
            tl.store(out_ptr + offs_b, result.to(out_ptr.dtype.element_ty), mask=b_ok)
        else:
            stat_where = (offs_b * co_tiles + co_tile) * 2
            tl.store(stats_ptr + stat_where, row_max, mask=b_ok)
            tl.store(stats_ptr + stat_where + 1, row_sum, mask=b_ok)
            ticket = tl.atomic_add(tickets_ptr + b_tiles * co_tiles + b_tile, 1)
            if ticket == co_tiles - 1:
                run_max = tl.full([BLOCK_B], float("-inf"), dtype=ACC)
                run_sum = tl.zeros([BLOCK_B], dtype=ACC)
                for t in range(0, co_tiles):  # tile order: deterministic
                    t_max = tl.load(stats_ptr + (offs_b * co_tiles + t) * 2, mask=b_ok, other=0.0,
                                    cache_modifier=".cg")
                    t_sum = tl.load(stats_ptr + (offs_b * co_tiles + t) * 2 + 1, mask=b_ok, other=0.0,
                                    cache_modifier=".cg")
                    new_max = tl.maximum(run_max, t_max)
                    run_scale = tl.exp(tl.where(run_max == new_max, 0.0, run_max - new_max))
                    t_scale = tl.exp(tl.where(t_max == new_max, 0.0, t_max - new_max))
                    run_sum = run_sum * run_scale + t_sum * t_scale
                    run_max = new_max
                result = 10.0 * (run_max + tl.log(tl.where(b_ok, run_sum, 1.0)))
                tl.store(out_ptr + offs_b, result.to(out_ptr.dtype.element_ty), mask=b_ok)
                tl.atomic_xchg(tickets_ptr + b_tiles * co_tiles + b_tile, 0)


_ACC = {torch.float64: tl.float64}
_multiprocessors = {}


def _programs_wanted(device: torch.device) -> int:
    if device.type != "cuda":
        return 8  # the CPU interpreter: a few programs, so splitting is still exercised
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _multiprocessors:
        _multiprocessors[index] = torch.cuda.get_device_properties(index).multi_processor_count
    return PROGRAMS_PER_SM * _multiprocessors[index]


def _split_plan(groups: int, group_bytes: int, plane: int, rows: int, acc_dtype: torch.dtype, device: torch.device):
    """(chunk, partials [splits, rows]): each of `groups` groups of `plane` positions is cut into pieces of `chunk`
    positions. Short groups stay whole; others give enough programs for the device, no piece under MIN_CHUNK_BYTES.
    Pieces start 16 elements apart, so an aligned row stays aligned in every piece."""
    splits = 1
    if group_bytes > WHOLE_ROW_BYTES:
        wanted = triton.cdiv(_programs_wanted(device), groups)
        splits = max(1, min(wanted, group_bytes // MIN_CHUNK_BYTES, MAX_SPLITS))
    chunk = triton.cdiv(triton.cdiv(plane, splits), 16) * 16
    return chunk, torch.empty(triton.cdiv(plane, chunk), rows, dtype=acc_dtype, device=device)


def _launch(kernel, grid, *args, chunk, **constexprs):
    """An autotuned kernel on the GPU; on CPU tensors (Triton's interpreter, which cannot time configurations) the
    largest tile the pruning keeps (fewest interpreted steps), so CI runs the same kernel code."""
    if args[0].device.type == "cuda":
        kernel[grid](*args, **constexprs)
        return
    config = _prune(kernel.configs, {"chunk": chunk})[-1]
    meta = dict(constexprs, **config.kwargs)
    kernel.fn[grid(meta) if callable(grid) else grid](*args, **meta)


def _bucket(n: int) -> int:
    return triton.next_power_of_2(max(1, n))


def _partials(x: torch.Tensor, acc_dtype: torch.dtype) -> torch.Tensor:
    """[splits, B*C] partial sums of x over H*W, one launch, x read in place."""
    batch, channels, height, width = x.shape
    sb, sc, sh, sw = x.stride()
    rows, plane, elem = batch * channels, height * width, x.element_size()
    acc = _ACC.get(acc_dtype, tl.float32)
    channels_adjacent = channels == 1 or sc == 1
    flat = height == 1 or sh == width * sw
    if channels_adjacent and flat and sw != 1 and sc == 1:
        block_c = min(triton.next_power_of_2(channels), max(16, 256 // elem))
        channel_blocks = triton.cdiv(channels, block_c)
        chunk, partials = _split_plan(batch * channel_blocks, plane * block_c * elem, plane, rows, acc_dtype, x.device)
        _launch(_channels_last_partials, (batch * channel_blocks, partials.shape[0]),
                x, partials, rows, channels, plane, chunk, channel_blocks, sb, sw, _bucket(rows), _bucket(chunk),
                chunk=chunk, EVEN_C=channels % block_c == 0, ACC=acc, BLOCK_C=block_c)
        return partials
    if width == 1:
        sw = sh  # a column: positions step by stride_h
    chunk, partials = _split_plan(rows, plane * elem, plane, rows, acc_dtype, x.device)
    grid = lambda meta: (triton.cdiv(rows, meta["BLOCK_R"]), partials.shape[0])  # noqa: E731
    _launch(_row_partials, grid, x, partials, rows, channels, width, plane, chunk, sb, sc, sh, sw,
            _bucket(rows), _bucket(chunk), chunk=chunk, FLAT=flat or width == 1, ACC=acc)
    return partials


def forward(x: torch.Tensor, weight: torch.Tensor, conv_bias: Optional[torch.Tensor], bias: torch.Tensor, *,
            stride=1, padding=0, output_padding=0, dilation=1, groups: int = 1) -> torch.Tensor:
    """fusedlse_cuda.forward in Triton: same arguments, checks and numerics; [B, 1] in x's dtype. No autograd."""
    settings = fusedlse_cuda.ops.conv_settings(stride, padding, output_padding, dilation, groups)
    if settings["padding"] != [0, 0] or settings["groups"] != 1:
        raise ValueError(f"the Triton rival computes padding 0 and groups 1 only, got padding {settings['padding']} "
                         f"and groups {settings['groups']}; fusedlse_cuda.forward computes every setting")
    out_area = torch.ops.fusedlse.check_forward.default(x, weight, conv_bias, bias, **settings)
    batch, channels = x.shape[0], x.shape[1]
    c_out, taps = weight.shape[1], weight.shape[2] * weight.shape[3]
    out = torch.empty(batch, 1, dtype=x.dtype, device=x.device)
    if batch == 0:
        return out
    # Triton launches on the current device: make it x's (x may be on cuda:1 while cuda:0 is current).
    on_device = torch.cuda.device(x.device) if x.device.type == "cuda" else contextlib.nullcontext()
    with on_device:
        acc_dtype = fusedlse_cuda.ops.accumulation_dtype(x.dtype)
        partials = _partials(x, acc_dtype)
        weight = weight.contiguous()
        bias = bias.reshape(-1)
        bias_stride = 0 if bias.numel() == 1 else bias.stride(0)  # one value for every channel
        use_dot = acc_dtype == torch.float32
        block_b = 32 if use_dot and batch >= 256 else 16
        block_co = 64 if use_dot else 32
        sub_ci = 16 if use_dot else 8  # tl.dot's smallest K
        block_ci = 64 if channels > 32 else 32
        splits = partials.shape[0]
        split_block = min(triton.next_power_of_2(splits), max(1, 4096 // (block_b * sub_ci)))
        b_tiles, co_tiles, ci_tiles = triton.cdiv(batch, block_b), triton.cdiv(c_out, block_co), triton.cdiv(
            channels, block_ci)
        zpart = torch.empty(ci_tiles * batch * c_out if ci_tiles > 1 else 1, dtype=acc_dtype, device=x.device)
        stats = torch.empty(batch * co_tiles * 2 if co_tiles > 1 else 1, dtype=acc_dtype, device=x.device)
        # The launch's own tickets, zeroed in its stream: no launch that may run beside it (another stream, a CUDA
        # graph replay) shares them.
        tickets = torch.zeros(b_tiles * co_tiles + b_tiles, dtype=torch.int32, device=x.device)
        _gemm_lse[(b_tiles, co_tiles, ci_tiles)](
            partials, weight, conv_bias if conv_bias is not None else bias, bias, zpart, stats, tickets, out,
            batch, channels, c_out, splits, bias_stride, out_area, taps,
            HAS_CONV_BIAS=conv_bias is not None, USE_DOT=use_dot, ACC=_ACC.get(acc_dtype, tl.float32),
            BLOCK_B=block_b, BLOCK_CO=block_co, BLOCK_CI=block_ci, SUB_CI=sub_ci, SPLIT_BLOCK=split_block,
            TAP_BLOCK=min(triton.next_power_of_2(taps), MAX_TAP_BLOCK), num_warps=8)
    return out
