"""compute-sanitizer's four tools over every launch plan (sanitize_plans.py): no memory error, no shared-memory
race, no barrier misuse and no read of uninitialised device memory in fusedlse's kernels (but the masked-vector and
run walks' loads of bytes they do not add: loads_past_storage). Long: marked stress (run with FUSEDLSE_STRESS=1)."""
import os
import re
import shutil
import subprocess
import sys

import pytest

from helpers import HAS_CUDA

SANITIZER = shutil.which("compute-sanitizer") or next(
    (p for p in ("/usr/local/cuda/bin/compute-sanitizer",) if os.path.exists(p)), None)

pytestmark = [pytest.mark.cuda, pytest.mark.stress,
              pytest.mark.skipif(os.environ.get("FUSEDLSE_STRESS") != "1", reason="stress test: FUSEDLSE_STRESS=1"),
              pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and the CUDA backend"),
              pytest.mark.skipif(SANITIZER is None, reason="compute-sanitizer not found")]

TOOL_FLAGS = {
    "memcheck": ["--leak-check", "no"],
    "racecheck": ["--racecheck-report", "all"],
    "synccheck": [],
    "initcheck": [],
}


@pytest.mark.parametrize("tool", list(TOOL_FLAGS))
def test_sanitizer_finds_nothing_in_our_kernels(tool):
    """Every kernel is instrumented (initcheck must see torch's writes of the inputs too); a report is ours when
    its stack names a fusedlse function."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sanitize_plans.py")
    done = subprocess.run([SANITIZER, "--tool", tool, *TOOL_FLAGS[tool], "--print-limit", "100000", sys.executable,
                           script], capture_output=True, text=True, timeout=1800)
    output = done.stdout + done.stderr
    summary = re.findall(r"(?:ERROR|RACECHECK) SUMMARY: .*", output)
    print(tool, summary)
    assert "all plans right" in done.stdout, output[-6000:]
    ours = [report for report in sanitizer_reports(output)
            if "fusedlse" in report and not loads_past_storage(tool, report)]
    assert not ours, "\n\n".join(ours)[:6000]


def loads_past_storage(tool, report):
    """initcheck's reports of the masked-vector and run walks: they load the aligned 16 bytes around a plane's or a
    run's first and last elements, up to 15 bytes before or past x's storage, which nothing may have written (the
    caching allocator's padding), and add none of them (the sanitizer plans' sliced inputs have NaN between their
    rows, so an added gap would show in the result; memcheck still checks those loads). The run walk's loads are in
    run_item_sums, or in plane_runs_kernel itself where it sums whole planes per vector."""
    walks = ("masked_lane_share", "run_item_sums", "plane_runs_kernel")
    return tool == "initcheck" and any(walk in report for walk in walks)


def sanitizer_reports(output):
    """The error and hazard reports in compute-sanitizer's output, each with its stack lines."""
    reports, current = [], None
    for line in output.splitlines():
        if not line.startswith("========="):
            continue
        body = line[len("========="):]
        if body.startswith(" ") and body.strip() and not body.startswith("  ") and not re.match(
                r" (COMPUTE-SANITIZER|ERROR SUMMARY|RACECHECK SUMMARY|LEAK SUMMARY|Program hit)", body):
            current = [body.strip()]
            reports.append(current)
        elif current is not None and body.strip():
            current.append(body.strip())
    return ["\n".join(r) for r in reports]
