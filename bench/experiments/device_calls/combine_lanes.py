"""Padding's combine of per-tap sums without shares at each lane count a plane (s95: planning.forced_tap_combine_lanes,
explain's combine) against the rule's, on one machine: every problem of the public sweep at padding 1..3 whose tap
sums take the tap kernels without shares, timed with 1, 2, 4, 8, 16 and 32 lanes forced and by the rule, beside the
padding-0 forward; each forward checked against the float64 shortcut. 32 lanes is main's warp per plane wherever the
GEMM does not ask for the cells, so "32" against "rule" is s95's A/B within one build. One JSON line a (problem,
padding):

    python combine_lanes.py OUT.jsonl [SECONDS]     # run in a built tree's root (PYTHONPATH=python:bench)

Lines as they finish, so a run cut off at SECONDS keeps what it timed. callEL.sh runs it with AB=combine_lanes."""
from fusedlse_cuda.planning import forced_tap_combine_lanes
from element_ab import sweep_ab  # beside this file

LANES = (1, 2, 4, 8, 16, 32)


def main():
    forcings = {str(lanes): (lambda lanes=lanes: forced_tap_combine_lanes(lanes)) for lanes in LANES}
    sweep_ab(lambda plan: "combine" in plan and plan.get("gemm", {}).get("strategy") != "tap_shares",
             {**forcings, "rule": None},
             lambda plan, weight: dict(rule=plan["combine"], tap_sums=plan["tap_sums"],
                                       gemm_over=plan.get("gemm_over")))


if __name__ == "__main__":
    main()
