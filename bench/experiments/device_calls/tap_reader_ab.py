"""The padded forward by the rule alone, beside padding 0's, on every public-sweep pair whose tap sums take the tap
kernels (explain's tap_sums "kernels"): one run of an A/B across two builds (callTR.sh runs it in each tree in turn;
docs/limits.md §118, s99's sums over the warp at once). One JSON line a (problem, padding), as element_ab.sweep_ab
writes them:

    python tap_reader_ab.py OUT.jsonl [SECONDS]     # run in a built tree's root (PYTHONPATH=python:bench)

TAP_SUMS in the environment names the tap_sums values taken, comma-separated (default "kernels"; the channels walk's
is "channel_kernels", docs/limits.md §120)."""
import os

from element_ab import sweep_ab  # beside this file

TAKEN = os.environ.get("TAP_SUMS", "kernels").split(",")


def main():
    sweep_ab(lambda plan: plan.get("tap_sums") in TAKEN, {"rule": None},
             lambda plan, weight: dict(tap_sums=plan["tap_sums"], combine=plan.get("combine"),
                                       gemm_over=plan.get("gemm_over")))


if __name__ == "__main__":
    main()
