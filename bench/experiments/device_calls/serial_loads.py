"""Loads of 1- and 2-byte elements whose value is read before the next global load issues, per kernel: the SASS form
that held s101's 16-bit channels walk to one load in flight a lane (docs/limits.md §120). Runs on this machine (no
GPU): nvcc builds the .cu files for sm_90, Triton's wheel supplies cuobjdump.

    python serial_loads.py [csrc/cuda/taps.cu ...]      # in the repository root; default: every csrc/cuda/*.cu

A line a kernel with at least 3 such loads: the file, flagged / all its 1- and 2-byte loads, the kernel's name. A
heuristic: a flagged load followed by no other load nearby (a tail, a lone element) costs nothing; look at the SASS."""
import glob
import os
import re
import subprocess
import sys
import tempfile

import triton

CUOBJDUMP = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
NVCC = "/usr/local/cuda/bin/nvcc"
INSTRUCTION = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(.*?)\s*;")
PREDICATE = re.compile(r"^@!?P\d+\s+")
SMALL_LOAD = re.compile(r"^LDG\S*\.(U16|S16|U8|S8)\S*\s+R(\d+)")
WINDOW = 40


def sources_read(instruction):
    """The registers an instruction reads (its operands after the first, the destination)."""
    operands = instruction.split(None, 1)[1] if " " in instruction else ""
    return set(re.findall(r"\bR(\d+)\b", ",".join(operands.split(",")[1:])))


def flagged_loads(instructions):
    """(flagged, all) small loads: a flagged one's value is read, within a straight run, before a later load."""
    body = [PREDICATE.sub("", i) for i in instructions]
    flagged = loads = 0
    for i, ins in enumerate(body):
        m = SMALL_LOAD.match(ins)
        if not m:
            continue
        loads += 1
        for j in range(i + 1, min(i + WINDOW, len(body))):
            if body[j].startswith(("LDG", "BRA", "EXIT", "BSYNC", "RET", "CALL")):
                break
            if m.group(2) in sources_read(body[j]):
                flagged += any(b.startswith("LDG") for b in body[j:j + WINDOW])
                break
    return flagged, loads


def main():
    sources = sys.argv[1:] or sorted(glob.glob("csrc/cuda/*.cu"))
    with tempfile.TemporaryDirectory() as tmp:
        for source in sources:
            cubin = os.path.join(tmp, os.path.basename(source) + ".cubin")
            subprocess.run([NVCC, "-O3", "-std=c++20", "--expt-relaxed-constexpr", "-arch=sm_90", "-cubin",
                            "-Icsrc", "-Icsrc/cuda", "-o", cubin, source], check=True, capture_output=True)
            sass = subprocess.run([CUOBJDUMP, "-sass", cubin], check=True, capture_output=True, text=True).stdout
            for chunk in sass.split("Function : ")[1:]:
                name, _, text = chunk.partition("\n")
                flagged, loads = flagged_loads(INSTRUCTION.findall(text))
                if flagged >= 3:
                    print(f"{os.path.basename(source)}: {flagged}/{loads} {name.strip()}")


if __name__ == "__main__":
    main()
