"""cuBLAS's float32 GEMM (TF32 off) at the public sweep's GEMM shapes with C_out as it is and rounded up to 4, 8 and
32 columns: its kernel and time (docs/limits.md section 104). torch ops alone; ran as a heredoc on a warm machine."""
import json

import torch
from triton.testing import do_bench

torch.backends.cuda.matmul.allow_tf32 = False


def names(fn):
    fn()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as p:
        fn()
        torch.cuda.synchronize()
    return sorted({e.name[:50] for e in p.events() if e.device_type == torch.autograd.DeviceType.CUDA})


for M, K, N in [(65358, 220, 113), (125565, 69, 35), (70, 445, 2892), (43075, 133, 669), (50146, 50, 869),
                (512, 2048, 1024), (41332, 681, 3996), (8192, 1000, 1001)]:
    for n in sorted({N, -(-N // 4) * 4, -(-N // 8) * 8, -(-N // 32) * 32}):
        a = torch.randn(M, K, device="cuda")
        b = torch.randn(K, n, device="cuda")
        o = torch.empty(M, n, device="cuda")
        fn = lambda: torch.mm(a, b, out=o)  # noqa: E731
        print(json.dumps(dict(M=M, K=K, N=n, us=round(do_bench(fn, warmup=10, rep=50) * 1e3, 1), k=names(fn))))
