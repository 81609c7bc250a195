"""Which walk reads tiny contiguous planes that follow each other fastest, by plane size: the tables behind
plan::tiny_plane_walk (csrc/cuda/tuning.h). Each walk that applies is forced in turn
(fusedlse_cuda.planning.forced_walk): "lanes" (a lane per plane), "runs" (the run walk, each element added to its
plane's sum; 16- and 32-bit elements), "vector_planes" (planes of 1, 2, 4 or 8 elements summed whole per 16-byte
vector, where they tile the vectors; 16- and 32-bit), "staged" (tiles of a run's planes staged in shared memory, a
thread per plane; planes of at most 64 bytes in runs of 4096 or more: the contiguous layout here). Prints, per
dtype, plane size, plane count and layout (every plane one run, or a run per batch of 200 planes: a slice of C
starting one plane in), the median time of sum_hw in us (do_bench, L2 flushed; best of two interleaved rounds) and
the fastest walk; then, per dtype and plane size, the geometric means of lanes / runs and of (the fastest other
walk) / staged, and the sizes where each exceeds 1.02 (the tables' rule). Run on a GPU:

    python3 bench/experiments/run_walks.py [--dtypes float16,float32,float64] [--max-plane-bytes 64]

Under a minute on an H200 with --max-plane-bytes 64 and the three dtypes."""
import argparse
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import fusedlse_cuda  # noqa: E402
from fusedlse_cuda.planning import WALKS, forced_walk  # noqa: E402
from sweep import time_ms  # noqa: E402

PLANES = range(1, 33)
COUNTS = (2_000_000, 14_000_000)
LAYOUTS = ("contiguous", "channel_slice")
CHANNELS = 200
ROUNDS = 2
RULE = 1.02
STAGED_MAX_PLANE_BYTES = 64  # cuda/tuning.h kStagedMaxPlaneBytes


def walks_for(dtype, plane, layout):
    """The walks that read planes of `plane` elements of `dtype` in `layout` as forced (plan::tiny_plane_walk's
    rules; the staged walk takes runs of at least 4096 planes: here one run, "contiguous")."""
    size = torch.empty((), dtype=dtype).element_size()
    walks = ["lanes"]
    if size <= 4:
        walks.append("runs")
        if plane in (1, 2, 4, 8) and plane * size <= 16:
            walks.append("vector_planes")
    if plane * size <= STAGED_MAX_PLANE_BYTES and layout == "contiguous":
        walks.append("staged")
    return walks


def planes_of(dtype, plane, count, layout):
    batch = count // CHANNELS
    if layout == "contiguous":
        return torch.empty(batch, CHANNELS, 1, plane, device="cuda", dtype=dtype).normal_()
    return torch.empty(batch, CHANNELS + 2, 1, plane, device="cuda", dtype=dtype).normal_()[:, 1:CHANNELS + 1]


def walk_times_us(x, walks):
    best = {}
    for _ in range(ROUNDS):
        for walk in walks:
            with forced_walk(walk):
                best[walk] = min(best.get(walk, math.inf), time_ms(lambda: fusedlse_cuda.sum_hw(x)) * 1e3)
    return best


def geometric_mean(values):
    return math.exp(sum(map(math.log, values)) / len(values))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtypes", default="float16,float32")
    parser.add_argument("--max-plane-bytes", type=int, default=None,
                        help="only planes of at most this many bytes")
    args = parser.parse_args()
    dtypes = [getattr(torch, name) for name in args.dtypes.split(",")]
    print("dtype plane planes layout | us: " + " ".join(WALKS) + " | fastest")
    ratios = {}
    for dtype in dtypes:
        size = torch.empty((), dtype=dtype).element_size()
        for plane in PLANES:
            if args.max_plane_bytes is not None and plane * size > args.max_plane_bytes:
                continue
            for count in COUNTS:
                for layout in LAYOUTS:
                    walks = walks_for(dtype, plane, layout)
                    x = planes_of(dtype, plane, count, layout)
                    t = walk_times_us(x, walks)
                    del x
                    entry = ratios.setdefault((dtype, plane), {"runs": [], "staged": []})
                    if "runs" in t:
                        entry["runs"].append(t["lanes"] / t["runs"])
                    if "staged" in t:
                        entry["staged"].append(min(v for w, v in t.items() if w != "staged") / t["staged"])
                    print(f"{str(dtype)[6:]} {plane} {count} {layout} | "
                          + " ".join(f"{t.get(w, math.nan):.1f}" for w in WALKS)
                          + f" | {min(t, key=t.get)}", flush=True)
    for dtype in dtypes:
        for walk, label in (("runs", "lanes / runs"), ("staged", "fastest other / staged")):
            means = {plane: geometric_mean(entry[walk]) for (d, plane), entry in ratios.items()
                     if d == dtype and entry[walk]}
            if not means:
                continue
            print(f"{str(dtype)[6:]} {label} by plane size: "
                  + " ".join(f"{plane}:{mean:.2f}" for plane, mean in means.items()))
            print(f"  {walk} over {RULE}: {[plane for plane, mean in means.items() if mean > RULE]}")


if __name__ == "__main__":
    main()
