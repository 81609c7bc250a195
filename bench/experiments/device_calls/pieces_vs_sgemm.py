"""The bfloat16 pieces' GEMM (three products over 3 x C_in rounded up to 8, float32 output) against SGEMM (TF32
off) at 4096 and 65536 rows, C_out 120-4000 (multiples of 8) and C_in 32-256: do_bench medians, GEMMs alone, not
the pieces' launches (docs/limits.md section 104). torch ops alone; ran as a heredoc on a warm machine."""
import json

import torch
from triton.testing import do_bench

torch.backends.cuda.matmul.allow_tf32 = False
for M in (4096, 65536):
    for N in (120, 256, 672, 1288, 4000):
        for K in (32, 64, 96, 128, 160, 204, 256):
            a = torch.randn(M, K, device="cuda")
            b = torch.randn(K, N, device="cuda")
            o = torch.empty(M, N, device="cuda")
            kp = 3 * (-(-K // 8) * 8)
            ap = torch.randn(M, kp, device="cuda").bfloat16()
            bp = torch.randn(kp, N, device="cuda").bfloat16()
            s = do_bench(lambda: torch.mm(a, b, out=o), warmup=5, rep=25) * 1e3
            p = do_bench(lambda: torch.ops.aten.mm.dtype_out(ap, bp, torch.float32, out=o), warmup=5, rep=25) * 1e3
            print(json.dumps(dict(M=M, N=N, K=K, sgemm=round(s, 1), pieces_gemm=round(p, 1), ratio=round(p / s, 3))),
                  flush=True)
