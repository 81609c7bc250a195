"""What the build put in the compiled module: SASS for the RTX 4090 (sm_89) and the H100 (sm_90), PTX for newer
GPUs, 16-byte global loads in the fused kernels, no local-memory traffic in any kernel that reads x, and the
channel-rows reader's register budget. Needs no GPU: CI runs it."""
import glob
import os
import re
import shutil
import subprocess

import pytest

import fusedlse_cuda


def _cuobjdump():
    candidates = [os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "cuobjdump"),
                  shutil.which("cuobjdump") or ""]
    try:
        import triton

        candidates.append(os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump"))
    except ImportError:
        pass
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


CUOBJDUMP = _cuobjdump()
MODULE = glob.glob(os.path.join(os.path.dirname(fusedlse_cuda.__file__), "_C*.so"))[0]
pytestmark = [
    pytest.mark.skipif(not fusedlse_cuda.cuda_backend_built(), reason="built without the CUDA backend"),
    pytest.mark.skipif(CUOBJDUMP is None, reason="no cuobjdump (CUDA toolkit or Triton's bundled copy)"),
]


def run(*args):
    return subprocess.run([CUOBJDUMP, *args, MODULE], check=True, capture_output=True, text=True).stdout


def test_sass_for_ada_and_hopper_and_ptx():
    elves = run("--list-elf")
    assert "sm_89" in elves and "sm_90" in elves
    assert "sm_90" in run("--list-ptx")


def sass_functions(arch):
    """{kernel's mangled name: its SASS} in the module for `arch`."""
    functions = re.split(r"\n\s*Function : ", run("-sass", "-arch", arch))[1:]
    return {body.split("\n", 1)[0].strip(): body for body in functions}


@pytest.mark.parametrize("arch", ["sm_89", "sm_90"])
def test_fused_kernels_load_16_bytes_and_never_spill(arch):
    fused = {name: body for name, body in sass_functions(arch).items() if "fused_kernelI" in name}
    assert len(fused) == 8  # 4 dtypes x 2 layouts
    for name, body in fused.items():
        assert re.search(r"LDG\.E\.(EF\.)?128", body), f"{name}: no 128-bit global load"
        assert not re.search(r"\b(LDL|STL)\b", body), f"{name}: local-memory traffic"


# The kernels that read x, each with its count of instances (dtypes x walks; the pixel-vector walk with and without
# chunks; the tap reader 4 dtypes x 3 border sides x 4 walks (rows, channels, staged, staged by span sums) and 4
# dtypes x the 2 border sides in registers for the middle rows summed whole, kVectorBorderSide's rows walk for the 3
# dtypes of 2 and 4 bytes, and float32's channels walk row by row for the 3 border sides; the keep GEMM's mend for
# the 2 16-bit dtypes): their loads in flight are what they were tuned for, and a spill puts local-memory round trips
# among them.
X_READERS = {"plane_lanes_kernel": 80, "plane_runs_kernel": 17, "channel_rows_kernel": 8, "channel_vectors_kernel": 4,
             "pixel_vectors_kernel": 8, "tap_grid_kernel": 62, "small_plane_taps_kernel": 8,
             "self_contained_kernel": 4, "keep_gemm_mend_kernel": 2}


@pytest.mark.parametrize("arch", ["sm_89", "sm_90"])
def test_split_and_tap_readers_never_spill(arch):
    """No local-memory traffic in any kernel that reads x besides the fused one (the claim each change to them was
    checked by, with nvcc -Xptxas -v, before this test)."""
    functions = sass_functions(arch)
    for kind, count in X_READERS.items():
        readers = {name: body for name, body in functions.items() if re.search(rf"\d{kind}I", name)}
        assert len(readers) == count, (kind, len(readers))
        for name, body in readers.items():
            assert not re.search(r"\b(LDL|STL)\b", body), f"{name}: local-memory traffic"


def resource_usage(arch):
    """{kernel's mangled name: registers per thread} in the module's SASS for `arch` (cuobjdump)."""
    usage = run("--dump-resource-usage", "-arch", arch)
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"Function (\S+):\s*\n\s*REG:(\d+) ", usage)}


@pytest.mark.parametrize("arch", ["sm_89", "sm_90"])
def test_channel_rows_reader_keeps_its_blocks_per_sm(arch):
    """The channel-rows reader's scalar walk (blocks of 256 threads) within 48 registers, 5 resident blocks per SM on
    sm_89 and sm_90, as it was measured with; float64 within 64 (4 blocks: its wide walk's double accumulators took
    58 registers on sm_89 in 8d85bb4's build too). A fold of grouped weights compiled into it took the 16- and 32-bit
    instances to 46-55 registers, and r36 and r38 of the sweep, which have no groups, ran 5-6% slower on the H200
    (docs/limits.md §41)."""
    readers = {name: registers for name, registers in resource_usage(arch).items() if "channel_rows_kernel" in name}
    assert len(readers) == 8  # 4 dtypes x (narrow, wide)
    for name, registers in readers.items():
        budget = 64 if "channel_rows_kernelId" in name else 48
        assert registers <= budget, f"{name}: {registers} registers, {budget} at most"
