"""Where the padded forward makes the weight of its GEMM over taps (planning.TAP_WEIGHT_WAYS: the cells' weight
kernel ahead of the tap sums with their reader beside it or waiting for it, that kernel after them, ATen's copy after
them, main's way before s97) against the rule, on one machine: every problem of the public sweep at padding 1..3
whose GEMM runs over taps (explain's gemm_over "taps", no shares), timed every way beside the padding-0 forward, each
forward checked against the float64 shortcut; then torch.profiler's per-kernel medians of the pairs named, every
way. One JSON line a (problem, padding), then one a (pair, way) in KPROF.jsonl:

    python taps_weight_ab.py OUT.jsonl [SECONDS [KPROF.jsonl rNN:p ...]]   # in a built tree's root

Lines as they finish, so a run cut off keeps what it timed; SECONDS bounds the A/B alone. callS1.sh runs it with
AB=taps_weight_ab (no per-kernel times). Needs s98's planning.forced_tap_weight_way (bench/experiments/s98_next.mbox
until it lands; s97's forced_tap_weight_copy before it)."""
import json
import sys

import torch

sys.path.insert(0, "bench")
import fusedlse_cuda  # noqa: E402
from element_ab import sweep_ab  # noqa: E402  (beside this file)
from fusedlse_cuda.planning import TAP_WEIGHT_WAYS, forced_tap_weight_way  # noqa: E402
from kernel_times import kernel_us  # noqa: E402
from problems import make_random_inputs, random_problems  # noqa: E402
from timing import median_ms  # noqa: E402


def main():
    sweep_ab(lambda plan: plan.get("gemm_over") == "taps" and plan.get("gemm", {}).get("strategy") != "tap_shares",
             {**{way: (lambda way=way: forced_tap_weight_way(way)) for way in TAP_WEIGHT_WAYS}, "rule": None},
             lambda plan, weight: dict(weight_mib=round(weight.nbytes / 2**20, 1), tap_sums=plan["tap_sums"]))
    if len(sys.argv) < 5:
        return
    problems = random_problems()
    names = list(problems)
    with open(sys.argv[3], "w") as out:
        for spec in sys.argv[4:]:
            name, padding = spec.split(":")
            args = make_random_inputs(problems[name], names.index(name))
            call = lambda: fusedlse_cuda.forward(*args, padding=int(padding))  # noqa: E731
            for way in TAP_WEIGHT_WAYS:
                with forced_tap_weight_way(way):
                    row = dict(spec=spec, way=way, us=round(median_ms(call, 10, 60) * 1e3, 1),
                               kernels=kernel_us(call))
                print(json.dumps(row), file=out, flush=True)
            del args
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
