"""Which cuBLAS kernel the bfloat16 pieces' GEMM takes, and its time, by the GEMM's column count (docs/limits.md
section 104): seed 13's r61 ([41332, 681] sums x [681, 3996] W.sum, two batch ranges) with 3996 columns as main ran
it (the right pieces at a row stride of 4000) and with the 4000 of the padded rows, against the compiled shortcut's
one bfloat16 GEMM. torch ops alone, any build. python gemm_kernels.py OUT.jsonl"""
import json
import sys

import torch
from triton.testing import do_bench


def kernel_names(fn):
    fn()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return sorted({e.name[:60] for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA})


def mm_float_out(a, b, out):
    return torch.ops.aten.mm.dtype_out(a, b, torch.float32, out=out)


def case(name, rows, depth, cols, b_stride, out_stride, f):
    a = torch.randn(rows, depth, device="cuda").bfloat16()
    b = torch.randn(depth, b_stride, device="cuda").bfloat16()[:, :cols]
    out = torch.empty(rows, out_stride, device="cuda")[:, :cols]
    fn = lambda: mm_float_out(a, b, out)  # noqa: E731
    us = do_bench(fn, warmup=25, rep=100) * 1e3
    row = dict(name=name, rows=rows, depth=depth, cols=cols, b_stride=b_stride, out_stride=out_stride, us=round(us, 1),
               tflops=round(2 * rows * depth * cols / us / 1e6, 1), kernels=kernel_names(fn),
               device=torch.cuda.get_device_name())
    print(json.dumps(row))
    f.write(json.dumps(row) + "\n")


def main(out):
    with open(out, "a") as f:
        for rows in (25000, 16332, 41332):
            for cols, b_stride, out_stride in ((3996, 4000, 3996), (3996, 4000, 4000), (4000, 4000, 4000),
                                               (4008, 4008, 4008), (4096, 4096, 4096)):
                case(f"pieces_{rows}", rows, 3 * 688, cols, b_stride, out_stride, f)
        for rows, depth, cols in ((512, 2048, 1024), (20000, 2000, 2800), (8192, 1000, 1001), (8192, 1000, 1008),
                                  (3000, 777, 2999), (3000, 777, 3000)):
            pad = -(-cols // 8) * 8
            case("other", rows, 3 * (-(-depth // 8) * 8), cols, pad, cols, f)
            if pad != cols:
                case("other_padded", rows, 3 * (-(-depth // 8) * 8), pad, pad, pad, f)
        a = torch.randn(41332, 681, device="cuda").bfloat16()
        b = torch.randn(681, 3996, device="cuda").bfloat16()
        fn = lambda: a @ b  # noqa: E731
        us = do_bench(fn, warmup=25, rep=100) * 1e3
        row = dict(name="shortcut_bf16_out", us=round(us, 1), kernels=kernel_names(fn))
        print(json.dumps(row))
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
