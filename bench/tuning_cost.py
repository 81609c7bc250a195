"""What the tuned Triton forward's first call costs per new shape: Triton compilation plus autotuning.

    TRITON_CACHE_DIR=$(mktemp -d) python bench/tuning_cost.py     # cold: compile and tune everything
    TRITON_CACHE_DIR=<same dir> python bench/tuning_cost.py       # warm: kernels and tuning results from disk

Prints, per sweep shape, the first call's wall time, the steady-state median and the configuration chosen.
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from problems import SWEEP, make_inputs, require_cuda  # noqa: E402
from timing import median_ms  # noqa: E402


def main(names):
    require_cuda("bench/tuning_cost.py")
    from triton_ref import tuned

    print(f"{torch.cuda.get_device_name()}; TRITON_CACHE_DIR={os.environ.get('TRITON_CACHE_DIR', '(default)')}")
    print(f"{'shape':18s} {'first call s':>12s} {'steady ms':>10s}  chosen partial-sum configuration")
    for name in names:
        args = make_inputs(name)
        torch.cuda.synchronize()
        start = time.perf_counter()
        tuned.forward(*args)
        torch.cuda.synchronize()
        first = time.perf_counter() - start
        steady = median_ms(lambda: tuned.forward(*args))
        chosen = [str(k.best_config) for k in (tuned._row_partials, tuned._channels_last_partials)
                  if getattr(k, "best_config", None) is not None]
        print(f"{name:18s} {first:12.2f} {steady:10.4f}  {chosen[-1] if chosen else '-'}", flush=True)
        del args
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main(sys.argv[1:] or [n for n in SWEEP if not n.startswith("grow_")])
