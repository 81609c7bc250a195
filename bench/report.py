"""Results of the A/B suite (bench/test_bench.py): a markdown table and a PNG plot per run, one run kept per device,
and one CSV of every run's rows.

    python bench/report.py --record RUN.json   # what `make bench` does after pytest: RUN.json becomes
                                               # bench/results/<device>/latest.json (the device's previous run goes;
                                               # git history keeps it), latest.md and latest.png are written beside
                                               # it, and the run's rows are appended to bench/results/history.csv
    python bench/report.py [RUN.json ...]      # (re)write RUN.md and RUN.png beside each pytest-benchmark JSON
                                               # (by default, every bench/results/<device>/latest.json)

history.csv has one row per (run, shape, provider):
    date, commit, device, torch    when the run started (UTC), the commit it ran on (+dirty: with uncommitted
                                   changes), torch.cuda.get_device_name(), torch's version ("" where not recorded)
    shape, provider, bytes         the sweep problem (bench/problems.py), who computed it, the bytes of x
    median_ms                      CUDA events, median, L2 flushed before each run (a CUDA-graph replay per call
                                   for the cuda_graph provider)
    torch_sum_ms                   torch's x.sum(dim=(2, 3)) on the same x, same run: reading x and nothing else
    frac_of_torch_sum              torch_sum_ms / median_ms: 1.0 is as fast as torch's own read of this x
    frac_of_headline_sum_gbps      bytes / median_ms over the GB/s of torch's sum on the contiguous 1 GiB headline
                                   tensor in the same run (the bw_frac of the tables)
"""
import csv
import glob
import json
import os
import re
import shutil
import sys

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
HISTORY = os.path.join(RESULTS, "history.csv")
HISTORY_FIELDS = ["date", "commit", "device", "torch", "shape", "provider", "bytes", "median_ms", "torch_sum_ms",
                  "frac_of_torch_sum", "frac_of_headline_sum_gbps"]
PROVIDER_ORDER = ["cuda", "cuda_graph", "triton_tuned", "triton_seed", "torch_shortcut", "torch_shortcut_compiled",
                  "torch_model", "torch_model_compiled"]


def load(path):
    with open(path) as f:
        run = json.load(f)
    rows = [b["extra_info"] for b in run.get("benchmarks", []) if b.get("extra_info", {}).get("provider")]
    return run, rows


def device_dir(device):
    """bench/results/<device>/ for a torch.cuda.get_device_name(): 'NVIDIA H100 80GB HBM3' -> h100-80gb-hbm3."""
    words = [w for w in re.split(r"[^a-z0-9]+", device.lower()) if w and w not in ("nvidia", "geforce", "tesla")]
    return os.path.join(RESULTS, "-".join(words) or "unknown")


def run_date(run):
    return run.get("datetime", "")[:19].replace("T", " ")


def run_commit(run):
    info = run.get("commit_info", {})
    commit = (info.get("id") or "unknown")[:7]
    return commit + ("+dirty" if info.get("dirty") else "")


def table(run, rows):
    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    providers = [p for p in PROVIDER_ORDER if any(r["provider"] == p for r in rows)]
    by_key = {(r["shape"], r["provider"]): r for r in rows}
    first = rows[0]
    versions = f", torch {first['torch']}" if first.get("torch") else ""
    lines = [f"Device: {first['device']}{versions}; run {run_date(run)} UTC on commit {run_commit(run)}. "
             f"Ceiling = torch `x.sum(dim=(2,3))` on the 1 GiB headline tensor: {first['ceiling_gbps']:.0f} GB/s "
             f"(bw_frac = GB/s / ceiling).", "",
             "Each cell: median time (CUDA events, L2 flushed) / bw_frac. `torch sum` is torch's `x.sum(dim=(2,3))` "
             "on the same x in the same run.", "",
             "| shape | MiB | torch sum | " + " | ".join(providers) + " |",
             "|---|---|---|" + "---|" * len(providers)]
    for shape in shapes:
        any_row = next(r for r in rows if r["shape"] == shape)
        cells = []
        for provider in providers:
            r = by_key.get((shape, provider))
            if r is None:
                cells.append("-")
                continue
            extra = f" ({r['back_to_back_us']:.1f} us b2b)" if "back_to_back_us" in r else ""
            extra += f" ({r['replay_us']:.1f} us/replay)" if "replay_us" in r else ""
            cells.append(f"{_time(r['median_ms'])} / {r['bw_frac']:.3f}{extra}")
        lines.append(f"| {shape} | {any_row['bytes'] / 2**20:.1f} | {_time(any_row['torch_sum_ms'])} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _time(ms):
    return f"{ms * 1000:.1f} us" if ms < 1 else f"{ms:.3f} ms"


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for provider in PROVIDER_ORDER:
        points = sorted((r["bytes"], r["gbps"]) for r in rows if r["provider"] == provider
                        and r["shape"].startswith("grow_"))
        if points:
            ax.plot([p[0] / 2**20 for p in points], [p[1] for p in points], marker="o", label=provider)
    sums = sorted({(r["bytes"], r["bytes"] / r["torch_sum_ms"] / 1e6) for r in rows if r["shape"].startswith("grow_")})
    ax.plot([p[0] / 2**20 for p in sums], [p[1] for p in sums], "k:", marker="x", label="torch x.sum(dim=(2,3))")
    ax.axhline(rows[0]["ceiling_gbps"], color="k", linestyle="--", label="ceiling (torch sum, 1 GiB headline)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("bytes of x (MiB), 64 x 256 x 256 float32 per batch row")
    ax.set_ylabel("effective GB/s (bytes of x / time)")
    ax.set_title(f"fusedlse forward, growing B — {rows[0]['device']}")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def history_rows(run, rows):
    date, commit = run_date(run), run_commit(run)
    return [{"date": date, "commit": commit, "device": r["device"], "torch": r.get("torch", ""), "shape": r["shape"],
             "provider": r["provider"], "bytes": r["bytes"], "median_ms": f"{r['median_ms']:.6g}",
             "torch_sum_ms": f"{r['torch_sum_ms']:.6g}",
             "frac_of_torch_sum": f"{r['torch_sum_ms'] / r['median_ms']:.4f}",
             "frac_of_headline_sum_gbps": f"{r['bw_frac']:.4f}"} for r in rows]


def append_history(run, rows, path=None):
    """Append the run's rows to history.csv; a run already there (same date and device) is not added twice."""
    path = path or HISTORY
    new = history_rows(run, rows)
    seen = set()
    if os.path.exists(path):
        with open(path, newline="") as f:
            seen = {(r["date"], r["device"]) for r in csv.DictReader(f)}
    if (new[0]["date"], new[0]["device"]) in seen:
        return 0
    fresh = not os.path.exists(path)
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_FIELDS, lineterminator="\n")
        if fresh:
            writer.writeheader()
        writer.writerows(new)
    return len(new)


def render(path):
    """Write path's .md and .png beside it; return the table."""
    run, rows = load(path)
    stem = os.path.splitext(path)[0]
    text = table(run, rows)
    with open(stem + ".md", "w") as f:
        f.write(text)
    plot(rows, stem + ".png")
    return text


def record(path):
    run, rows = load(path) if os.path.exists(path) and os.path.getsize(path) else ({}, [])
    if not rows:
        print(f"{path}: no benchmark rows (every benchmark skipped, e.g. without a CUDA GPU); nothing recorded")
        return
    target = device_dir(rows[0]["device"])
    os.makedirs(target, exist_ok=True)
    latest = os.path.join(target, "latest.json")
    shutil.copyfile(path, latest)
    print(render(latest))
    added = append_history(run, rows)
    print(f"wrote {os.path.relpath(target)}/latest.{{json,md,png}}; {added} rows appended to "
          f"{os.path.relpath(HISTORY)}")


def main(argv):
    if argv[:1] == ["--record"] and len(argv) == 2:
        record(argv[1])
    elif all(not arg.startswith("-") for arg in argv):
        for path in argv or sorted(glob.glob(os.path.join(RESULTS, "*", "latest.json"))):
            print(render(path))
    else:
        sys.exit("usage: python bench/report.py --record RUN.json | python bench/report.py [RUN.json ...]")


if __name__ == "__main__":
    main(sys.argv[1:])
