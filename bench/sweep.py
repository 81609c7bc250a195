"""The public random sweep: every provider on seeded shapes nobody tuned for (bench/problems.py random_problems),
each time set against the floor measured on the same shape in the same run.

    python bench/sweep.py [--count 64] [--seed 2026] [--only r03,r17] [--named] [--out DIR]   # GPU
    python bench/sweep.py --render DIR/sweep.json          # rewrite DIR/sweep.md and sweep.png from the JSON

floor = max(read floor, GEMM floor): the read floor is torch's flat t.sum() over a contiguous tensor of x's dtype and
bytes, the GEMM floor torch.mm of the epilogue's [B, C_in] x [C_in, C_out] in float32 with TF32 off.
floor_frac = floor / time (1.0: at the floor). Every output is also checked against the float64 shortcut computed
from the same inputs (err column), so a fast wrong answer shows. Writes DIR/sweep.json (every row), DIR/sweep.md
(summary per provider: min, p10, median floor_frac; then every row) and DIR/sweep.png (floor_frac against bytes).
DIR defaults to bench/results/<device>/. Each shape's `reach` is the floor_frac no forward can pass: the floor
against the time of reading the bytes every forward must read (touched_bytes of x, and the weight). Every time (the
providers', the floors', must-read's) is the best of ROUNDS rounds in which the shape's providers take turns.
"""
import argparse
import datetime
import functools
import json
import os
import statistics
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from problems import (NAMED_TARGETS, PROVIDERS, SWEEP, describe, make_inputs, make_random_inputs,  # noqa: E402
                      random_problems, rel_err, require_cuda)
from report import device_dir  # noqa: E402

import fusedlse_cuda  # noqa: E402

SWEEP_PROVIDERS = ("cuda", "torch_shortcut", "torch_shortcut_compiled", "triton_tuned", "triton_seed")
# One call slower than this is timed by a few single calls instead of do_bench's hundreds (a provider far off the
# floor would otherwise take minutes on one shape).
SLOW_CALL_MS = 50.0
# Timing rounds per shape: every provider and both floors are timed in ROUNDS rounds, taking turns within each, and
# each keeps its best round. A call under about 50 us takes the host's time per call (docs/limits.md §15), which
# moved by 10-40% between runs of unchanged code (r02 22 -> 39 us, r46 42 -> 61 -> 33): a slow spell of the host now
# costs a round, not a shape's only measurement.
ROUNDS = 3


def time_ms(fn):
    """Median time of fn (already called once): do_bench (L2 flushed, CUDA events) unless one call takes over
    SLOW_CALL_MS; then the median of three single calls, or one call's time when that took over a second."""
    from timing import median_ms

    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(3):
        start.record()
        fn()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop))
        if times[0] < SLOW_CALL_MS:
            # The rounds share do_bench's 10 ms of warm-up and 60 ms of repetitions: a sweep takes as long as before.
            return median_ms(fn, warmup_ms=10 / ROUNDS, rep_ms=60 / ROUNDS)
        if times[0] > 1000:
            break
    return statistics.median(times)


def best_of_rounds(fns, measure, rounds=ROUNDS, slow_ms=SLOW_CALL_MS):
    """{name: the least of `rounds` values of measure(name, fn)} for fns = {name: callable}, the callables taking
    turns within each round. A callable first measured at slow_ms or more is measured once: it is not bound by the
    host, and its rounds would take seconds."""
    best = {}
    for round_index in range(rounds):
        for name, fn in fns.items():
            if round_index and best[name] >= slow_ms:
                continue
            best[name] = min(best.get(name, float("inf")), measure(name, fn))
    return best


def floors_ms(x, c_out):
    """(read floor, GEMM floor) for x and an epilogue of c_out channels, in ms: each its best of ROUNDS rounds."""
    flat = torch.empty(x.numel(), dtype=x.dtype, device=x.device).normal_()
    sums = torch.randn(x.shape[0], x.shape[1], device=x.device)
    weight_sum = torch.randn(x.shape[1], c_out, device=x.device)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        flat.sum()
        torch.mm(sums, weight_sum)
        best = best_of_rounds({"read": lambda: flat.sum(), "gemm": lambda: torch.mm(sums, weight_sum)},
                              lambda name, fn: time_ms(fn))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    return best["read"], best["gemm"]


def touched_bytes(x, sector=32, chunk_elements=2**24):
    """Bytes of the DRAM sectors (32 bytes, aligned) that hold at least one element of x: what any reader of x must
    fetch. More than x's own bytes where its rows have gaps (a slice of H or W): the gaps within a sector come along.
    Counted exactly, a chunk of planes at a time, on x's device."""
    b, c, h, w = x.shape
    esize = x.element_size()
    first = x.storage_offset() * esize  # bytes from the storage's start, which the allocator aligns
    span = first + (sum((n - 1) * st for n, st in zip(x.shape, x.stride())) + 1) * esize
    hit = torch.zeros((span + sector - 1) // sector, dtype=torch.bool, device=x.device)
    inner = (torch.arange(h, device=x.device)[:, None] * x.stride(2)
             + torch.arange(w, device=x.device)[None, :] * x.stride(3)).flatten()
    planes_per_chunk = max(1, chunk_elements // max(1, h * w))
    for start in range(0, b * c, planes_per_chunk):
        plane = torch.arange(start, min(b * c, start + planes_per_chunk), device=x.device)
        base = (plane // c) * x.stride(0) + (plane % c) * x.stride(1)
        hit[(first + (base[:, None] + inner[None, :]) * esize) // sector] = True
    return int(hit.sum()) * sector


def must_read_ms(x, weight):
    """Time of torch's flat t.sum() over as many bytes as any forward must read: the sectors x lies in
    (touched_bytes) and the weight's bytes, in x's dtype."""
    nbytes = touched_bytes(x) + weight.numel() * weight.element_size()
    flat = torch.empty(-(-nbytes // x.element_size()), dtype=x.dtype, device=x.device).normal_()
    flat.sum()
    return best_of_rounds({"must": lambda: flat.sum()}, lambda name, fn: time_ms(fn))["must"]


def shortcut_f64(x, weight, conv_bias, bias):
    """The shortcut in float64 on the GPU: the truth for a sweep row (the identity is exact; tests check it against
    the real model)."""
    from fusedlse_cuda import reference

    d = lambda t: None if t is None else t.double()  # noqa: E731
    return reference.shortcut(d(x), d(weight), d(conv_bias), d(bias))


@functools.lru_cache(maxsize=None)
def _shortcut_compiled():
    """The shortcut under torch.compile with dynamic shapes: one graph per dtype and layout rather than per shape
    (the compile time is not what is measured; its kernels are the same)."""
    from fusedlse_cuda import reference

    return torch.compile(reference.shortcut, dynamic=True)


def provider_fn(name):
    return _shortcut_compiled() if name == "torch_shortcut_compiled" else PROVIDERS[name]()


def run(problems, providers, checkpoint=lambda rows: None):
    """Every provider on every problem; checkpoint(rows) after each problem (a run cut short keeps what it did)."""
    torch._dynamo.config.recompile_limit = 10**6  # a compiled shortcut per shape, never a silent eager fallback
    rows = []
    for name, problem in problems.items():
        checkpoint(rows)
        shape, dtype, layout = problem
        if name in SWEEP:
            args = make_inputs(name)
        else:
            args = make_random_inputs(problem, index=int(name[1:]))
        x = args[0]
        nbytes = x.numel() * x.element_size()
        read_ms, gemm_ms = floors_ms(x, shape[4])
        floor = max(read_ms, gemm_ms)
        must_ms = must_read_ms(x, args[1])
        truth = shortcut_f64(*args)
        plan = fusedlse_cuda.explain(x, args[1])
        split_epilogue = [plan["epilogue"]] if plan["strategy"] == "split" else []
        plan_name = "/".join([plan["strategy"], plan["reader"]] + split_epilogue)
        base = dict(shape=name, dims=list(shape), dtype=str(dtype).split(".")[-1], layout=layout, bytes=nbytes,
                    read_floor_ms=read_ms, gemm_floor_ms=gemm_ms, floor_ms=floor, must_read_ms=must_ms,
                    reach=floor / max(floor, must_ms),
                    plan=plan_name, predicted_ms=plan["predicted_us"] / 1000)
        if name in SWEEP:  # the named targets' yardstick (the headline's) and each named shape's own
            base["sum_hw_ms"] = best_of_rounds({"sum_hw": lambda: x.sum(dim=(2, 3))},
                                               lambda _, fn: time_ms(fn))["sum_hw"]
        shape_rows, calls = {}, {}
        for who in providers:
            fn = provider_fn(who)
            shape_rows[who] = row = dict(base, provider=who)
            try:
                row["err"] = rel_err(fn(*args), truth)
                calls[who] = lambda fn=fn: fn(*args)
            except Exception as error:  # a provider that cannot run a shape is a row, not the end of the sweep
                _failed(row, error)

        def measure(who, call):
            try:
                return time_ms(call)
            except Exception as error:
                _failed(shape_rows[who], error)
                return float("inf")

        for who, ms in best_of_rounds(calls, measure).items():
            if "error" not in shape_rows[who]:
                shape_rows[who].update(median_ms=ms, floor_frac=floor / ms)
        rows.extend(shape_rows.values())
        line = "  ".join(f"{r['provider']} {r['floor_frac']:.3f}" if "floor_frac" in r else f"{r['provider']} ERR"
                         for r in rows[-len(providers):])
        print(f"{name} {describe(shape)} {base['dtype']} {layout} {nbytes / 2**20:.1f} MiB  floor "
              f"{floor * 1000:.1f} us ({'gemm' if gemm_ms > read_ms else 'read'})  {line}", flush=True)
        args = x = truth = None  # this problem's tensors go before the next one's are drawn
        torch.cuda.empty_cache()
    return rows


def _failed(row, error):
    """Marks a provider's row as failed with `error` (its first line), and lets the device settle."""
    row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
    row.pop("median_ms", None)
    row.pop("floor_frac", None)
    torch.cuda.synchronize()


def is_random(name):
    return name[0] == "r" and name[1:].isdigit()


def min_p10_median(values):
    """(min, p10, median) of a non-empty list: the sweep's summary figures."""
    ordered = sorted(values)
    return ordered[0], ordered[int(0.1 * (len(ordered) - 1))], statistics.median(ordered)


def summary(rows, providers):
    """{provider: (min, p10, median) of floor_frac over the shapes it ran; shapes it could not run count as 0}."""
    out = {}
    for provider in providers:
        fracs = [r.get("floor_frac", 0.0) for r in rows if r["provider"] == provider and is_random(r["shape"])]
        if fracs:
            out[provider] = min_p10_median(fracs)
    return out


def reach_summary(rows):
    """(min, p10, median) over the random shapes of `reach`: the floor_frac a forward reading only the bytes it must
    (the sectors x lies in, the weight) at the read floor's speed would score; None for rows without it."""
    reach = [r["reach"] for r in rows if r["provider"] == rows[0]["provider"] and is_random(r["shape"])
             and "reach" in r]
    return min_p10_median(reach) if reach else None


def _times_by_shape(rows):
    """{shape: {provider: median_ms or None}}."""
    by_shape = {}
    for r in rows:
        by_shape.setdefault(r["shape"], {})[r["provider"]] = r.get("median_ms")
    return by_shape


def fastest_rivals(rows):
    """{shape: (provider, ratio)} for each shape where fusedlse CUDA and another provider ran: the fastest other
    provider and its time over fusedlse's (below 1: fusedlse is slower)."""
    found = {}
    for shape, times in _times_by_shape(rows).items():
        rivals = {provider: ms for provider, ms in times.items() if provider != "cuda" and ms}
        if times.get("cuda") and rivals:
            provider = min(rivals, key=rivals.get)
            found[shape] = (provider, rivals[provider] / times["cuda"])
    return found


def losses(rows):
    """Shapes where fusedlse CUDA is slower than another provider that ran: [(shape, provider, ratio)]."""
    found = []
    for shape, times in _times_by_shape(rows).items():
        ours = times.get("cuda")
        for provider, ms in times.items():
            if provider != "cuda" and ms and (ours is None or ours > ms):
                found.append((shape, provider, (ours / ms) if ours else float("inf")))
    return found


# Shapes whose fastest rival takes at most this much more time than fusedlse are listed after the losses: a run's
# spread (calls under 50 us move by 10-40% between runs, docs/limits.md §15) can make them losses.
CLOSE_RIVAL_MARGIN = 0.05


def named_targets(rows):
    """[(shape, target, share, read_share, status)] for the named shapes of NAMED_TARGETS that fusedlse CUDA ran, with
    the headline among them: share = its GB/s over the yardstick's, read_share = the same for torch's flat read of
    the shape's bytes (its read floor); status "met", "open", "open, the read floor misses it too" where that read
    falls short of the target too and fusedlse does not pass it (a better read may still reach it: docs/limits.md
    says which targets a standalone read kernel could not reach), or "open, past the read floor" where fusedlse
    passes it but not the target (the flat read then proves no limit). The yardstick is the GB/s of torch's
    x.sum(dim=(2, 3)) on the headline (sum_hw_ms), or of its flat read in runs that did not time that (the second
    value returned says which)."""
    ours = {r["shape"]: r for r in rows if r["provider"] == "cuda" and "median_ms" in r}
    headline = ours.get("headline")
    if headline is None:
        return [], None
    yardstick = "x.sum(dim=(2, 3))" if "sum_hw_ms" in headline else "flat t.sum()"
    gbps = headline["bytes"] / headline.get("sum_hw_ms", headline["read_floor_ms"])
    found = []
    for name, target in NAMED_TARGETS.items():
        if name not in ours:
            continue
        row = ours[name]
        share, read_share = row["bytes"] / row["median_ms"] / gbps, row["bytes"] / row["read_floor_ms"] / gbps
        if share >= target:
            status = "met"
        elif read_share >= target:
            status = "open"
        else:
            status = "open, the read floor misses it too" if share <= read_share else "open, past the read floor"
        found.append((name, target, share, read_share, status))
    return found, yardstick


def named_times(rows, providers):
    """[(shape, MiB, x.sum(dim=(2, 3)) us or None, [us or None per provider])] for the named problems in the run, in
    SWEEP's order: the table of times beside the shares (a user's question is often "how long", not "how near")."""
    times, first = _times_by_shape(rows), {}
    for r in rows:
        first.setdefault(r["shape"], r)
    us = lambda ms: None if ms is None else ms * 1000  # noqa: E731
    return [(name, first[name]["bytes"] / 2**20, us(first[name].get("sum_hw_ms")),
             [us(times[name].get(provider)) for provider in providers]) for name in SWEEP if name in first]


def markdown(meta, rows, providers):
    lines = [f"Random sweep: {sum(map(is_random, dict.fromkeys(r['shape'] for r in rows)))} random shapes "
             f"(seed {meta['seed']}; the summary counts these, not the named problems listed after them), "
             f"{meta['device']}, torch {meta['torch']}, run {meta['date']} UTC on commit {meta['commit']}.", "",
             "floor_frac = max(read floor, GEMM floor) / time, both floors measured on the same shape in the same run "
             "(read: torch's flat `t.sum()` over the same bytes; GEMM: fp32 `torch.mm` of the epilogue, TF32 off)"
             + (f"; every time the best of {meta['rounds']} rounds, providers and floors taking turns."
                if meta.get("rounds", 1) > 1 else "."),
             "", "| provider | min | p10 | median |", "|---|---|---|---|"]
    if meta.get("note"):
        lines[2:2] = ["Note: " + meta["note"], ""]
    for provider, (lo, p10, med) in summary(rows, providers).items():
        lines.append(f"| {provider} | {lo:.3f} | {p10:.3f} | {med:.3f} |")
    reach = reach_summary(rows)
    if reach:
        lines.append("| *reach* | {:.3f} | {:.3f} | {:.3f} |".format(*reach))
        lines += ["", "*reach*: the floor_frac of a forward that reads only the bytes it must, at the read floor's "
                  "speed: the 32-byte sectors x's elements lie in (more than x's bytes where a slice of H or W leaves "
                  "gaps in its rows) and the weight, timed as torch's flat `t.sum()` over that many bytes "
                  "(must-read): floor / max(floor, must-read). No forward's floor_frac can pass it by more than "
                  "noise."]
    targets, yardstick = named_targets(rows)
    if targets:
        lines += ["", f"Named targets (issue 14): fusedlse CUDA's GB/s as a share of those of torch's {yardstick} on "
                  "the headline in this run; *read*: the same share for torch's flat read of the shape's bytes (its "
                  "read floor).", "", "| shape | target | fusedlse CUDA | *read* | |", "|---|---|---|---|---|"]
        lines += [f"| {name} | {target:.2f} | {share:.3f} | {read_share:.3f} | {status} |"
                  for name, target, share, read_share, status in targets]
    times = named_times(rows, providers)
    if times:
        us = lambda value: "-" if value is None else f"{value:.1f}"  # noqa: E731
        lines += ["", "Named problems, us (the same rounds' best): torch's `x.sum(dim=(2, 3))` of the same x beside "
                  "every provider.", "", "| shape | MiB | torch x.sum(dim=(2, 3)) | " + " | ".join(providers) + " |",
                  "|---|---|---|" + "---|" * len(providers)]
        lines += [f"| {name} | {mib:.1f} | {us(sum_hw)} | " + " | ".join(map(us, cells)) + " |"
                  for name, mib, sum_hw, cells in times]
    lost = losses(rows)
    close = sorted((ratio, shape, provider) for shape, (provider, ratio) in fastest_rivals(rows).items()
                   if 1 <= ratio <= 1 + CLOSE_RIVAL_MARGIN)
    lines += ["", f"Shapes where fusedlse CUDA is slower than a rival: {len(lost)}"
              + "".join(f"\n- {s}: {p} is {ratio:.2f}x faster" for s, p, ratio in lost), "",
              f"Shapes where a rival takes at most {CLOSE_RIVAL_MARGIN:.0%} more time than fusedlse CUDA: {len(close)}"
              + "".join(f"\n- {s}: {p}, {ratio:.3f}x fusedlse's time" for ratio, s, p in close), "",
              "Each cell: floor_frac. plan: what fusedlse_cuda.explain() chose; predicted: its cost model's time.", "",
              "| shape | dims (B, C_in, H, W, C_out, kH, kW) | dtype | layout | MiB | floor us | reach | plan | "
              "predicted us | " + " | ".join(providers) + " |", "|---|---|---|---|---|---|---|---|---|"
              + "---|" * len(providers)]
    by_key = {(r["shape"], r["provider"]): r for r in rows}
    for name in dict.fromkeys(r["shape"] for r in rows):
        first = by_key[(name, providers[0])]
        cells = []
        for provider in providers:
            r = by_key.get((name, provider), {})
            cells.append(f"{r['floor_frac']:.3f}" if "floor_frac" in r else "error")
        kind = "gemm" if first["gemm_floor_ms"] > first["read_floor_ms"] else "read"
        lines.append(f"| {name} | {tuple(first['dims'])} | {first['dtype']} | {first['layout']} | "
                     f"{first['bytes'] / 2**20:.1f} | {first['floor_ms'] * 1000:.1f} ({kind}) | "
                     + (f"{first['reach']:.3f}" if "reach" in first else "-") + f" | {first['plan']} | "
                     f"{first['predicted_ms'] * 1000:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(meta, rows, providers, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for provider in providers:
        points = [(r["bytes"] / 2**20, r["floor_frac"]) for r in rows
                  if r["provider"] == provider and "floor_frac" in r]
        if points:
            ax.scatter(*zip(*points), label=provider, s=18, alpha=0.8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.axhline(1.0, color="k", linestyle="--", linewidth=0.8)
    ax.set_xlabel("bytes of x (MiB)")
    ax.set_ylabel("floor_frac = max(read floor, GEMM floor) / time")
    names = dict.fromkeys(r["shape"] for r in rows)
    random_count = sum(map(is_random, names))
    named = f" + {len(names) - random_count} named" if len(names) > random_count else ""
    ax.set_title(f"random sweep ({random_count} shapes, seed {meta['seed']}{named}) — {meta['device']}, "
                 f"{meta['commit']}")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def tree_commit():
    """HEAD's short hash, +dirty where tracked files differ from it (FUSEDLSE_COMMIT, or "unknown", without git)."""
    try:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("FUSEDLSE_COMMIT", "unknown")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--only", default="", help="comma-separated problem names (r00, r17, ...)")
    parser.add_argument("--named", action="store_true", help="the named problems too (bench/problems.py SWEEP; "
                        "their rows are listed, not counted in the summary)")
    parser.add_argument("--providers", default=",".join(SWEEP_PROVIDERS))
    parser.add_argument("--out", default=None)
    parser.add_argument("--render", default=None, help="only rewrite this sweep.json's .md and .png")
    args = parser.parse_args(argv)
    if args.render:
        with open(args.render) as f:
            saved = json.load(f)
        providers = tuple(dict.fromkeys(r["provider"] for r in saved["rows"]))
        out = os.path.dirname(args.render)
        with open(os.path.join(out, "sweep.md"), "w") as f:
            f.write(markdown(saved["meta"], saved["rows"], providers))
        plot(saved["meta"], saved["rows"], providers, os.path.join(out, "sweep.png"))
        return
    require_cuda("bench/sweep.py")
    problems = random_problems(args.count, args.seed)
    if args.named:
        problems.update({name: SWEEP[name] for name in SWEEP if not name.startswith("grow_")})
    if args.only:
        problems = {name: problems[name] for name in args.only.split(",")}
    providers = tuple(args.providers.split(","))
    meta = dict(count=len(problems), seed=args.seed, device=torch.cuda.get_device_name(), torch=torch.__version__,
                date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"), rounds=ROUNDS,
                commit=os.environ.get("FUSEDLSE_COMMIT") or tree_commit())
    out = args.out or device_dir(meta["device"])
    os.makedirs(out, exist_ok=True)

    def save(rows):
        with open(os.path.join(out, "sweep.json"), "w") as f:
            json.dump(dict(meta=meta, rows=rows), f, indent=1)

    rows = run(problems, providers, save)
    save(rows)
    text = markdown(meta, rows, providers)
    with open(os.path.join(out, "sweep.md"), "w") as f:
        f.write(text)
    plot(meta, rows, providers, os.path.join(out, "sweep.png"))
    print(text.split("\n\n| shape")[0])


if __name__ == "__main__":
    main()
