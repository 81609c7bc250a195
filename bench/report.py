"""Turn a pytest-benchmark JSON run of bench/test_bench.py into a markdown table and a PNG plot.

python bench/report.py bench/results/<run>.json   -> writes <run>.md and <run>.png beside it
"""
import json
import os
import sys

PROVIDER_ORDER = ["cuda", "cuda_graph", "triton_tuned", "triton_seed", "torch_shortcut", "torch_shortcut_compiled",
                  "torch_model", "torch_model_compiled"]


def load(path):
    with open(path) as f:
        run = json.load(f)
    rows = [b["extra_info"] for b in run["benchmarks"] if b.get("extra_info", {}).get("provider")]
    return run, rows


def table(run, rows):
    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    providers = [p for p in PROVIDER_ORDER if any(r["provider"] == p for r in rows)]
    by_key = {(r["shape"], r["provider"]): r for r in rows}
    first = rows[0]
    lines = [f"Device: {first['device']}; run {run.get('datetime', '?')}; ceiling = torch `x.sum(dim=(2,3))` on the "
             f"1 GiB headline tensor: {first['ceiling_gbps']:.0f} GB/s (bw_frac = GB/s / ceiling).", "",
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


def main(path):
    run, rows = load(path)
    stem = os.path.splitext(path)[0]
    with open(stem + ".md", "w") as f:
        f.write(table(run, rows))
    plot(rows, stem + ".png")
    print(open(stem + ".md").read())


if __name__ == "__main__":
    main(sys.argv[1])
