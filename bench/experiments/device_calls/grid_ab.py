"""The plane-lanes reader's launch, A/B in one build (docs/limits.md section 93): every public-sweep problem's forward
(do_bench median, L2 flushed) at each padding of PADS it allows (default "0") under each of MODES, the modes
alternating ROUNDS times, each keeping its least; the plan's readers from explain (padding 0), so rows that never
launch the plane-lanes reader show the noise.
MODES (comma-separated, default "turns,persistent"): "turns" (a block a turn, the rule of s66), "persistent"
(planning.forced_plane_lanes_persistent), "piecesN" (planning.forced_plane_lanes_pieces(N), with the rule's grid),
"rule" (nothing forced: s68's rule, persistent where a plane's pieces share a block, section 96); for padding's rows
walk (s71, section 99) "walks" and "by_span" (planning.forced_tap_middle_by_span False and True).
python grid_ab.py OUT.jsonl [rNN ...]"""
import contextlib
import json
import os
import sys

sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
import torch  # noqa: E402

import fusedlse_cuda  # noqa: E402
from fusedlse_cuda.planning import forced_plane_lanes_persistent, forced_plane_lanes_pieces  # noqa: E402
from padding_groups import allowed  # noqa: E402
from problems import make_random_inputs, random_problems  # noqa: E402
from timing import median_ms  # noqa: E402

out, only = sys.argv[1], set(sys.argv[2:])
ROUNDS = int(os.environ.get("ROUNDS", "3"))
REP = int(os.environ.get("REP", "40"))
MODES = os.environ.get("MODES", "turns,persistent").split(",")
PADS = [int(p) for p in os.environ.get("PADS", "0").split(",")]


def mode_context(mode):
    if mode == "rule":
        return contextlib.nullcontext()
    if mode == "turns":
        return forced_plane_lanes_persistent(False)
    if mode == "persistent":
        return forced_plane_lanes_persistent(True)
    if mode.startswith("pieces"):
        return forced_plane_lanes_pieces(int(mode[len("pieces"):]))
    if mode in ("walks", "by_span"):
        from fusedlse_cuda.planning import forced_tap_middle_by_span
        return forced_tap_middle_by_span(mode == "by_span")
    raise ValueError(f"unknown mode {mode!r}")


with open(out, "a") as f:
    for index, (name, problem) in enumerate(random_problems().items()):
        if only and name not in only:
            continue
        args = make_random_inputs(problem, index)
        plan = fusedlse_cuda.explain(args[0], args[1])
        for pad in [p for p in PADS if p == 0 or allowed(problem[0], dict(padding=p))]:
            best = {mode: float("inf") for mode in MODES}
            for _ in range(ROUNDS):
                for mode in MODES:
                    with mode_context(mode) if mode else contextlib.nullcontext():
                        fn = lambda: fusedlse_cuda.forward(*args, padding=pad)  # noqa: E731
                        fn()
                        best[mode] = min(best[mode], median_ms(fn, 10, REP) * 1e3)
            padded = fusedlse_cuda.explain(args[0], args[1], padding=pad) if pad else {}
            row = dict(name=name, padding=pad, reader=plan.get("reader"), split_reader=plan.get("split_reader"),
                       tap_sums=padded.get("tap_sums"), middle_by_span=padded.get("middle_by_span"),
                       us={mode: round(t, 2) for mode, t in best.items()},
                       ratio={mode: round(t / best[MODES[0]], 4) for mode, t in best.items() if mode != MODES[0]})
            f.write(json.dumps(row) + "\n")
            f.flush()
            print(row, flush=True)
        del args
        torch.cuda.empty_cache()
