"""The tiled epilogue alone (the gemm_lse op: GEMM + biases + logsumexp, the planner's tiling) on the GEMMs of the
sweep rows whose epilogue keeps p10 below 0.6, in float64: do_bench's median and each kernel's median under
torch.profiler, with the error against torch's float64 logsumexp of the same GEMM. With --ncu ROW, one call inside an
NVTX range named "measure" instead, for Nsight Compute:

    python3 bench/experiments/epilogue_gemms.py [--rows r43,r23,r51,r27]
    ncu --clock-control none --nvtx --nvtx-include "measure/" -k regex:"mma_lse|bias_lse|merge" \\
        --section SpeedOfLight --section LaunchStats --section Occupancy --section WarpStateStats \\
        python3 bench/experiments/epilogue_gemms.py --ncu r43

docs/limits.md section 66's tables (the gemm_lse op alone, Nsight Compute) came from an uncommitted form of it that
made the same calls; this form has not run on a GPU yet."""
import argparse
import os
import sys

import torch
import triton.testing

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from kernel_times import kernel_us  # noqa: E402

import fusedlse_cuda  # noqa: E402

# Row -> the epilogue's GEMM: (B, C_in, C_out) of the sweep's problem (bench/problems.py random_problems).
GEMMS = {"r43": (2328, 657, 61), "r23": (15, 686, 3860), "r51": (46, 39, 4956), "r27": (180286, 25, 413)}
SCALE = 0.25  # any: 1 / (H_out x W_out) in the forward


def operands(batch, c_in, c_out):
    """(sums [B, C_in], weight_sum [C_in, C_out], total_bias [C_out]), float64 on the GPU, seeded."""
    generator = torch.Generator(device="cuda").manual_seed(0)
    draw = lambda *shape: torch.randn(*shape, device="cuda", dtype=torch.float64, generator=generator)  # noqa: E731
    return draw(batch, c_in), draw(c_in, c_out), draw(c_out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default=",".join(GEMMS))
    parser.add_argument("--ncu", default=None, help="one row: a single call inside the NVTX range 'measure'")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench/experiments/epilogue_gemms.py needs a CUDA GPU")
    if args.ncu is not None:
        sums, weight_sum, bias = operands(*GEMMS[args.ncu])
        for _ in range(5):
            fusedlse_cuda.gemm_lse(sums, weight_sum, bias, SCALE)
        torch.cuda.synchronize()
        torch.cuda.nvtx.range_push("measure")
        fusedlse_cuda.gemm_lse(sums, weight_sum, bias, SCALE)
        torch.cuda.nvtx.range_pop()
        torch.cuda.synchronize()
        return
    for row in args.rows.split(","):
        sums, weight_sum, bias = operands(*GEMMS[row])
        call = lambda: fusedlse_cuda.gemm_lse(sums, weight_sum, bias, SCALE)  # noqa: E731
        expected = 10 * torch.logsumexp(SCALE * (sums @ weight_sum) + bias, dim=1, keepdim=True)
        error = (call() - expected).abs().max().item()
        median_us = triton.testing.do_bench(call, warmup=50, rep=300, return_mode="median") * 1000
        kernels = ", ".join(f"{name.split('<')[0].split('::')[-1]} {us:.1f}"
                            for name, us in kernel_us(call).items())
        print(f"{row} {GEMMS[row]}: do_bench {median_us:.1f} us, max error {error:.1e}; kernels (us): {kernels}",
              flush=True)


if __name__ == "__main__":
    main()
