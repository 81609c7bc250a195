"""Two builds on the same sweep: per shape, each build's best floor_frac over its runs, and B's against A's.

    python bench/compare_sweeps.py A1/sweep.json,A2/sweep.json B1/sweep.json,B2/sweep.json [--provider cuda]

Small calls move by 10-30% between runs of one build on a busy host, more than most changes do; what separates two
builds is several runs of each, interleaved on one machine (A, B, A, B), each shape taken at its best run (the run
with the least interference). floor_frac already divides by a floor measured in the same run, so runs on different
machines of a kind compare too, though less tightly. Prints every shape (worst ratio first) and both builds'
summaries (min, p10, median over the random shapes, as bench/sweep.py's summary).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sweep import is_random, min_p10_median  # noqa: E402


def best_fracs(paths, provider):
    """{shape: the highest floor_frac of `provider` over the sweep.json files at `paths`} (shapes it failed on: 0)."""
    best = {}
    for path in paths:
        with open(path) as f:
            rows = json.load(f)["rows"]
        for row in rows:
            if row["provider"] == provider:
                best[row["shape"]] = max(best.get(row["shape"], 0.0), row.get("floor_frac", 0.0))
    return best


def compare(a, b):
    """[(shape, A's, B's, B / A)] for the shapes both have, worst ratio first (B / A of a shape A failed on: inf
    where B ran it, 1 where B failed too)."""
    def ratio(shape):
        if a[shape]:
            return b[shape] / a[shape]
        return float("inf") if b[shape] else 1.0

    return sorted(((shape, a[shape], b[shape], ratio(shape)) for shape in a if shape in b), key=lambda row: row[3])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="build A's sweep.json files, comma-separated")
    parser.add_argument("b", help="build B's sweep.json files, comma-separated")
    parser.add_argument("--provider", default="cuda")
    args = parser.parse_args()
    a = best_fracs(args.a.split(","), args.provider)
    b = best_fracs(args.b.split(","), args.provider)
    rows = compare(a, b)
    for shape, frac_a, frac_b, ratio in rows:
        print(f"{shape:14s} A {frac_a:.3f}  B {frac_b:.3f}  B/A {ratio:.3f}")
    shared_random = [row for row in rows if is_random(row[0])]
    for name, column in (("A", 1), ("B", 2)):
        if shared_random:
            low, p10, median = min_p10_median([row[column] for row in shared_random])
            print(f"{name}: min {low:.3f}  p10 {p10:.3f}  median {median:.3f} over {len(shared_random)} random shapes")


if __name__ == "__main__":
    main()
