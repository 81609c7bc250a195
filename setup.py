"""Builds fusedlse_cuda and its compiled module fusedlse_cuda._C.

Environment:
  FUSEDLSE_CPU_ONLY=1   build the CPU backend alone.
  FUSEDLSE_CUDA=1       require the CUDA backend: fail if torch has no CUDA or no toolkit is found.
  (neither)             build CUDA whenever torch has CUDA and a toolkit is found, else CPU with a warning.
  CUDA_HOME             the toolkit (a directory with bin/nvcc and include/cuda_runtime.h).
  TORCH_CUDA_ARCH_LIST  target GPUs; unset means "8.9;9.0+PTX" (RTX 4090 and H100 SASS, plus PTX).
"""
import glob
import os
import sys

from setuptools import setup

import torch
from torch.utils import cpp_extension

HERE = os.path.dirname(os.path.abspath(__file__))


def _toolkit_problem():
    """None when a usable CUDA toolkit is there, else why not."""
    if torch.version.cuda is None:
        return f"torch {torch.__version__} was built without CUDA"
    home = cpp_extension.CUDA_HOME
    if home is None:
        return "no CUDA toolkit found (set CUDA_HOME)"
    if not os.path.exists(os.path.join(home, "include", "cuda_runtime.h")):
        return f"CUDA_HOME={home} has no include/cuda_runtime.h (point CUDA_HOME at the toolkit, e.g. /usr/local/cuda)"
    return None


def _want_cuda():
    if os.environ.get("FUSEDLSE_CPU_ONLY") == "1":
        return False
    problem = _toolkit_problem()
    if os.environ.get("FUSEDLSE_CUDA") == "1":
        if problem:
            sys.exit(f"error: FUSEDLSE_CUDA=1 asks for the CUDA backend, but {problem}")
        return True
    if problem:
        print(f"warning: building fusedlse_cuda without its CUDA backend: {problem}", file=sys.stderr)
        return False
    return True


def _cxx_standard():
    """The standard torch's own headers were written for: C++20 where ATen demands it, else C++17. A mismatch
    compiles but changes the layout of classes shared with libtorch (seen: c10::Error crashing when thrown)."""
    aten_h = os.path.join(os.path.dirname(torch.__file__), "include", "ATen", "ATen.h")
    with open(aten_h) as f:
        return "c++20" if "202002L" in f.read() else "c++17"


def _aten_openmp():
    """Whether ATen runs at::parallel_for on OpenMP (Linux builds of torch do). That parallel_for is a template in
    ATen's headers whose `#pragma omp parallel` a compiler without -fopenmp ignores: the CPU backend's loops over
    planes then ran on one thread (docs/limits.md §88)."""
    parallel_info = getattr(torch._C, "_parallel_info", lambda: "")()  # private: absent, then no flag
    return (sys.platform.startswith("linux") and torch.backends.openmp.is_available()
            and "parallel backend: OpenMP" in parallel_info)


def _extension():
    std = f"-std={_cxx_standard()}"
    sources = [os.path.join("csrc", name) for name in ("fusedlse.cpp", "plan.cpp", "python_module.cpp")]
    sources += sorted(glob.glob(os.path.join("csrc", "cpu", "*.cpp")))
    cxx_flags, link_flags = ["-O3", std], []
    if _aten_openmp():
        cxx_flags.append("-fopenmp")
        link_flags.append("-fopenmp")
    if not _want_cuda():
        return cpp_extension.CppExtension("fusedlse_cuda._C", sources, extra_compile_args={"cxx": cxx_flags},
                                          extra_link_args=link_flags)
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.9;9.0+PTX")
    sources += sorted(glob.glob(os.path.join("csrc", "cuda", "*.cpp")))
    sources += sorted(glob.glob(os.path.join("csrc", "cuda", "*.cu")))
    nvcc_flags = ["-O3", std, "-Xptxas=-warn-spills", "-lineinfo"]
    return cpp_extension.CUDAExtension(
        "fusedlse_cuda._C", sources, extra_compile_args={"cxx": cxx_flags, "nvcc": nvcc_flags},
        extra_link_args=link_flags,
    )


class _IncrementalBuild(cpp_extension.BuildExtension):
    """Compiles in build/temp-<python>/, kept between builds, rather than in the throw-away directory that
    `pip install -e` hands out: ninja then recompiles only what changed (sources, and the sources whose headers
    changed, through the compilers' dependency files) or what is compiled with other flags."""

    def finalize_options(self):
        super().finalize_options()
        self.build_temp = os.path.join(HERE, "build", f"temp-{sys.implementation.cache_tag}")


setup(
    name="fusedlse_cuda",
    version="0.1.0",
    description="ConvTranspose2d -> mean -> +bias -> logsumexp -> x10 (KernelBench L2/42) in one pass over x",
    packages=["fusedlse_cuda", "triton_ref"],
    package_dir={"fusedlse_cuda": "python/fusedlse_cuda", "triton_ref": "triton_ref"},
    ext_modules=[_extension()],
    cmdclass={"build_ext": _IncrementalBuild.with_options(use_ninja=True)},
    python_requires=">=3.10",
    zip_safe=False,
)
