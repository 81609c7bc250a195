"""Which walk reads tiny contiguous planes that follow each other fastest, by plane size: the table behind
plan::tiny_plane_walk (csrc/cuda/tuning.h). Each walk is forced in turn (fusedlse_cuda.planning.forced_walk):
"lanes" (a lane per plane), "runs" (the run walk, each element added to its plane's sum), "vector_planes" (planes
of 1, 2, 4 or 8 elements summed whole per 16-byte vector, where they tile the vectors). Prints, per dtype, plane
size, plane count and layout (every plane one run, or a run per batch: a slice of C starting one plane in), the
median time of sum_hw in us (do_bench, L2 flushed; best of two interleaved rounds), the fastest walk and
lanes / runs; then, per dtype, the geometric mean of lanes / runs by plane size, and the sizes where it exceeds
1.02 (the table's rule). Run on a GPU: python3 bench/experiments/run_walks.py. About a minute on an H200."""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import fusedlse_cuda  # noqa: E402
from fusedlse_cuda.planning import WALKS, forced_walk  # noqa: E402
from sweep import time_ms  # noqa: E402

DTYPES = (torch.float16, torch.float32)
PLANES = range(1, 33)
COUNTS = (2_000_000, 14_000_000)
LAYOUTS = ("contiguous", "channel_slice")
CHANNELS = 200
ROUNDS = 2
RULE = 1.02


def tiles_vectors(dtype, plane):
    return plane in (1, 2, 4, 8) and plane * torch.finfo(dtype).bits // 8 <= 16


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


def main():
    print("dtype plane planes layout | us: " + " ".join(WALKS) + " | fastest, lanes / runs")
    ratios = {}
    for dtype in DTYPES:
        for plane in PLANES:
            walks = WALKS if tiles_vectors(dtype, plane) else WALKS[:2]
            for count in COUNTS:
                for layout in LAYOUTS:
                    x = planes_of(dtype, plane, count, layout)
                    t = walk_times_us(x, walks)
                    del x
                    ratio = t["lanes"] / t["runs"]
                    ratios.setdefault((dtype, plane), []).append(ratio)
                    print(f"{str(dtype)[6:]} {plane} {count} {layout} | "
                          + " ".join(f"{t.get(w, math.nan):.1f}" for w in WALKS)
                          + f" | {min(t, key=t.get)}, {ratio:.2f}", flush=True)
    for dtype in DTYPES:
        means = {plane: math.exp(sum(map(math.log, ratios[(dtype, plane)])) / len(ratios[(dtype, plane)]))
                 for plane in PLANES}
        print(f"{str(dtype)[6:]} lanes / runs by plane size: "
              + " ".join(f"{plane}:{mean:.2f}" for plane, mean in means.items()))
        print(f"  the run walk over {RULE}: {[plane for plane, mean in means.items() if mean > RULE]}")


if __name__ == "__main__":
    main()
