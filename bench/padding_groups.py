"""padding and groups (issue 16) against padding 0 and groups 1 on the same x: the forward's time ratio on the
headline and on a sample of the public sweep, and the backward's grad_x write against torch's fill of x's bytes.

    python bench/padding_groups.py [--every 4] [--out DIR]      # GPU; DIR defaults to bench/results/<device>/
    python bench/padding_groups.py --every 1 --variants g2,g3,g4 --stem groups_sweep     # groups on every problem
    python bench/padding_groups.py --every 1 --variants p1,p2,p3 --stem padding_sweep    # padding on every problem

A variant's ratio is its forward time over the padding-0, groups-1 forward's on the same x (1.05: 5% slower). Each
padding variant's *floor ratio* is the least ratio any forward could reach there: max(read floor, padded GEMM floor)
over the padding-0 forward's time, the read floor torch's flat t.sum() over x's bytes, the padded GEMM floor an fp32
torch.mm (TF32 off) of [B, C_in * r_h * r_w] x [C_in * r_h * r_w, C_out], r the rank of the taps' keep matrix along
each dimension (keep_rank): the GEMM over per-tap sums that no forward avoids for a general weight. With
groups g the weight is [C_in, C_out / g, kH, kW] and C_out stays the problem's; a variant a shape does not allow
(g not dividing C_in or C_out, padding that crops the whole output) is left out of that shape's row. Beside each
variant the plain-torch rival with its settings (reference.tap_shortcut, eager) is timed, and the variant's output is
checked against that shortcut in float64. Times are each the best of sweep.ROUNDS rounds of do_bench medians (L2
flushed), the variants and rivals taking turns. `--variants` times a
subset (a problem that allows none of them is skipped; grad_x's write is timed with a padding variant only). Writes
DIR/STEM.json and DIR/STEM.md (STEM: --stem, padding_groups by default).
"""
import argparse
import datetime
import json
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from problems import describe, make_inputs, make_random_inputs, random_problems, rel_err, require_cuda  # noqa: E402
from report import device_dir  # noqa: E402
from sweep import best_of_rounds, floors_ms, time_ms, tree_commit  # noqa: E402

import fusedlse_cuda  # noqa: E402
from fusedlse_cuda import reference  # noqa: E402

VARIANTS = {
    "p1": dict(padding=1), "p2": dict(padding=2), "p3": dict(padding=3),
    "g2": dict(groups=2), "g3": dict(groups=3), "g4": dict(groups=4), "p1_g2": dict(padding=1, groups=2),
}


# The plain-torch rival's entries among a row's timed calls: reference.tap_shortcut, eager, with the variant's
# settings (the tuned Triton rival refuses padding and groups; torch.compile would compile every shape anew).
RIVAL = "torch_shortcut_"


def allowed(shape, settings):
    _, c_in, height, width, c_out, kh, kw = shape
    groups, padding = settings.get("groups", 1), settings.get("padding", 0)
    return c_in % groups == 0 and c_out % groups == 0 and min(height + kh - 1, width + kw - 1) > 2 * padding


def variant_inputs(x, weight, conv_bias, bias, settings):
    groups = settings.get("groups", 1)
    return x, weight[:, :weight.shape[1] // groups].contiguous(), conv_bias, bias


def keep_rank(inputs, kernel, padding):
    """Rank of one dimension's keep matrix [tap, input]: 1 where the product of that input with that tap survives
    the crop (stride and dilation 1). A padded forward's GEMM needs this many values per channel and dimension: the
    logits are sum_c <A_h X[b, c] A_w^T, W[c, n]>, and a factor A = U V of rank r moves to the weight's side."""
    full = inputs + kernel - 1
    position = torch.arange(inputs)[None, :] + torch.arange(kernel)[:, None]
    keep = ((position >= padding) & (position < full - padding)).double()
    return int(torch.linalg.matrix_rank(keep))


def padded_floors_ms(x, shape, variants):
    """{"read": read floor, "p1".. : padded GEMM floor} in ms for the padding variants of `variants` the shape
    allows; {} where it allows none."""
    batch, c_in, height, width, c_out, kh, kw = shape
    padded = {v: settings for v, settings in variants.items()
              if set(settings) == {"padding"} and allowed(shape, settings)}
    if not padded:
        return {}
    read, _ = floors_ms(x, c_out)
    floors = {"read": read}
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        for variant, settings in padded.items():
            p = settings["padding"]
            depth = c_in * keep_rank(height, kh, p) * keep_rank(width, kw, p)
            sums = torch.randn(batch, depth, device=x.device)
            weight = torch.randn(depth, c_out, device=x.device)
            torch.mm(sums, weight)
            floors[variant] = best_of_rounds({"gemm": lambda: torch.mm(sums, weight)},
                                             lambda _, fn: time_ms(fn))["gemm"]
            del sums, weight
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    return floors


def measure(name, shape, inputs, variants):
    x, weight, conv_bias, bias = inputs
    calls = {"p0_g1": lambda: fusedlse_cuda.forward(x, weight, conv_bias, bias)}
    checked = {}
    for variant, settings in variants.items():
        if not allowed(shape, settings):
            continue
        args = variant_inputs(x, weight, conv_bias, bias, settings)
        calls[variant] = (lambda a, s: lambda: fusedlse_cuda.forward(*a, **s))(args, settings)
        calls[RIVAL + variant] = (lambda a, s: lambda: reference.tap_shortcut(*a, **s))(args, settings)
        # The float64 shortcut on x's device (tests/test_padding_groups.py checks it against the real model): every
        # size, where the model on the CPU takes seconds past 16 MiB of float32.
        f64 = [None if t is None else t.double() for t in args]
        checked[variant] = rel_err(calls[variant](), reference.tap_shortcut(*f64, **settings))
        del f64
    for fn in calls.values():
        fn()
    times = best_of_rounds(calls, lambda _, fn: time_ms(fn))
    rival = {k[len(RIVAL):]: times.pop(k) for k in list(times) if k.startswith(RIVAL)}
    base = times["p0_g1"]
    floors = padded_floors_ms(x, shape, variants)
    row = dict(name=name, shape=list(shape), dtype=str(x.dtype).replace("torch.", ""), bytes=x.nbytes,
               ms={k: round(v, 5) for k, v in times.items()},
               ratio={k: round(v / base, 4) for k, v in times.items() if k != "p0_g1"},
               floor_ms={k: round(v, 5) for k, v in floors.items()},
               floor_ratio={k: round(max(floors["read"], v) / base, 4) for k, v in floors.items() if k != "read"},
               rival_ms={k: round(v, 5) for k, v in rival.items()},
               rival_speedup={k: round(v / times[k], 2) for k, v in rival.items()},
               err={k: float(f"{v:.3g}") for k, v in checked.items()})
    print(f"{name:10s} {describe(shape):34s} {row['dtype']:8s} p0_g1 {base * 1e3:9.1f} us  " +
          "  ".join(f"{k} {v:.3f}" for k, v in row["ratio"].items()) + "  floor " +
          "  ".join(f"{k} {v:.3f}" for k, v in row["floor_ratio"].items()) + "  torch shortcut / ours " +
          "  ".join(f"{k} {v:.2f}" for k, v in row["rival_speedup"].items()) + "  err " +
          "  ".join(f"{k} {v:.2g}" for k, v in row["err"].items()), flush=True)
    return row


def grad_x_write(x, padding=1):
    """(broadcast_taps time, broadcast_hw time, torch fill time) in ms for a grad_x of x's shape and dtype."""
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    taps = torch.randn(x.shape[0], x.shape[1], 3, 3, device=x.device, dtype=acc)
    rows = taps.sum(dim=(2, 3))
    calls = {
        "broadcast_taps": lambda: fusedlse_cuda.broadcast_taps(taps, x.shape[2], x.shape[3], x.dtype,
                                                               padding=padding),
        "broadcast_hw": lambda: fusedlse_cuda.broadcast_hw(rows, x.shape[2], x.shape[3], x.dtype),
        "fill": lambda: torch.empty_like(x).fill_(1.0),
    }
    for fn in calls.values():
        fn()
    return best_of_rounds(calls, lambda _, fn: time_ms(fn))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--every", type=int, default=3, help="time every n-th problem of the public sweep (0: none)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, of " + ", ".join(VARIANTS))
    parser.add_argument("--stem", default="padding_groups", help="the output files' name, without .json / .md")
    args = parser.parse_args()
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        parser.error(f"--variants: expected names from {', '.join(VARIANTS)}, got {', '.join(unknown)}")
    variants = {v: VARIANTS[v] for v in args.variants.split(",")}
    require_cuda("bench/padding_groups.py")
    out_dir = args.out or device_dir(torch.cuda.get_device_name())
    os.makedirs(out_dir, exist_ok=True)
    rows = []
    x, weight, conv_bias, bias = make_inputs("headline")
    rows.append(measure("headline", tuple(x.shape) + tuple(weight.shape[1:]), (x, weight, conv_bias, bias), variants))
    padding_timed = any("padding" in settings for settings in variants.values())
    write = {f"p{p}": grad_x_write(x, p) for p in (1, 3)} if padding_timed else {}
    del x, weight, conv_bias, bias
    for index, (name, problem) in enumerate(random_problems().items()):
        if args.every <= 0 or index % args.every:
            continue
        if not any(allowed(problem[0], settings) for settings in variants.values()):
            continue
        inputs = make_random_inputs(problem, index)
        rows.append(measure(name, problem[0], inputs, variants))
        del inputs
    medians, floor_medians = {}, {}
    for variant in variants:
        ratios = [r["ratio"][variant] for r in rows[1:] if variant in r["ratio"]]
        if ratios:
            medians[variant] = round(statistics.median(ratios), 4)
        floor_ratios = [r["floor_ratio"][variant] for r in rows[1:] if variant in r["floor_ratio"]]
        if floor_ratios:
            floor_medians[variant] = round(statistics.median(floor_ratios), 4)
    commit = os.environ.get("FUSEDLSE_COMMIT") or tree_commit()
    result = dict(device=torch.cuda.get_device_name(), date=datetime.date.today().isoformat(), commit=commit,
                  rows=rows, sweep_median_ratio=medians, sweep_median_floor_ratio=floor_medians,
                  grad_x_write_ms=write)
    with open(os.path.join(out_dir, args.stem + ".json"), "w") as f:
        json.dump(result, f, indent=1)
    lines = [f"# padding and groups against padding 0, groups 1 ({result['device']}, {result['date']}, "
             f"commit {commit})", "",
             "Forward time of each variant over the padding-0, groups-1 forward on the same x "
             "(bench/padding_groups.py). Sweep rows: every " + (f"{args.every}-th " if args.every > 1 else "") +
             "problem of the public sweep" +
             ("" if len(variants) == len(VARIANTS) else " that allows one of the variants timed") + ".", "",
             "Cells: ratio, and for padding (floor ratio) as the module's docstring defines it. Above 1.05 the issue's "
             "floors put 5% out of reach; they bound a forward only where torch.mm's write of its [B, C_out] output, "
             "which a fused forward does not make, is not what it spends (r00's padding-0 forward runs at 1.5 of its "
             "own GEMM floor). After the semicolon: the plain-torch rival's time (reference.tap_shortcut, eager, the "
             "same settings) over the variant's, so above 1 fusedlse is faster. Every variant's output is checked "
             "against the float64 shortcut on the GPU (err in the JSON).", "",
             "| shape | dtype | p0_g1 us | " + " | ".join(variants) + " |",
             "|---|---|---|" + "---|" * len(variants)]
    for r in rows:
        cells = [(f"{r['ratio'][v]:.3f}" + (f" ({r['floor_ratio'][v]:.3f})" if v in r["floor_ratio"] else "") +
                  f"; {r['rival_speedup'][v]:.2f}") if v in r["ratio"] else "-" for v in variants]
        lines.append(f"| {r['name']} {describe(tuple(r['shape']))} | {r['dtype']} | {r['ms']['p0_g1'] * 1e3:.1f} | "
                     + " | ".join(cells) + " |")
    lines += ["", "Median ratio over the sweep rows: " + ", ".join(f"{k} {v:.3f}" for k, v in medians.items()) +
              ("; median floor ratio: " + ", ".join(f"{k} {v:.3f}" for k, v in floor_medians.items())
               if floor_medians else "")]
    if write:
        lines += ["", "grad_x write on the headline's x (us): " + "; ".join(
            f"padding {k[1:]}: broadcast_taps {v['broadcast_taps'] * 1e3:.1f}, broadcast_hw "
            f"{v['broadcast_hw'] * 1e3:.1f}, torch fill {v['fill'] * 1e3:.1f} (taps/fill "
            f"{v['fill'] / v['broadcast_taps']:.3f} of fill's speed)" for k, v in write.items())]
    with open(os.path.join(out_dir, args.stem + ".md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines[-3:]))


if __name__ == "__main__":
    main()
