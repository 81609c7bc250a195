"""The padded forward's weight over taps by the cells' weight kernel ahead of the tap sums (s97) against ATen's copy
after them (main's: planning.forced_tap_weight_copy(True)), on one machine: every problem of the public sweep at
padding 1..3 whose GEMM runs over taps (explain's gemm_over "taps", no shares), timed both ways beside the padding-0
forward; each forward checked against the float64 shortcut. One JSON line a (problem, padding):

    python taps_weight_ab.py OUT.jsonl [SECONDS]     # run in a built tree's root (PYTHONPATH=python:bench)

Lines as they finish, so a run cut off at SECONDS keeps what it timed. callS1.sh runs it with AB=taps_weight_ab."""
from fusedlse_cuda.planning import forced_tap_weight_copy
from element_ab import sweep_ab  # beside this file


def main():
    sweep_ab(lambda plan: plan.get("gemm_over") == "taps" and plan.get("gemm", {}).get("strategy") != "tap_shares",
             {"copy": lambda: forced_tap_weight_copy(True), "rule": None},
             lambda plan, weight: dict(weight_mib=round(weight.nbytes / 2**20, 1), tap_sums=plan["tap_sums"]))


if __name__ == "__main__":
    main()
