"""The padded forward by the rule alone, beside padding 0's, on every public-sweep pair whose tap sums take the tap
kernels (explain's tap_sums "kernels"): one run of an A/B across two builds (callTR.sh runs it in each tree in turn;
docs/limits.md §118, s99's sums over the warp at once). One JSON line a (problem, padding), as element_ab.sweep_ab
writes them:

    python tap_reader_ab.py OUT.jsonl [SECONDS]     # run in a built tree's root (PYTHONPATH=python:bench)

TAP_SUMS in the environment names the tap_sums values taken, comma-separated (default "kernels"; the channels walk's
is "channel_kernels", docs/limits.md §120). COMBINE, where set, keeps only the pairs whose plan's "combine" is one
of its comma-separated values ("lane_groups", "warp_per_plane"): a candidate that changes one combine alone is timed
on the pairs that run it, in less device time (docs/limits.md §128)."""
import os

from element_ab import sweep_ab  # beside this file

TAKEN = os.environ.get("TAP_SUMS", "kernels").split(",")
COMBINES = os.environ["COMBINE"].split(",") if os.environ.get("COMBINE") else None


def main():
    sweep_ab(lambda plan: plan.get("tap_sums") in TAKEN and (COMBINES is None or plan.get("combine") in COMBINES),
             {"rule": None},
             lambda plan, weight: dict(tap_sums=plan["tap_sums"], combine=plan.get("combine"),
                                       gemm_over=plan.get("gemm_over")))


if __name__ == "__main__":
    main()
