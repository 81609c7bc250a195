"""The cuBLAS epilogue's GEMM, sums [B, K] fp32 x W.sum [K, N] fp32, as SGEMM against one bf16 tensor-core GEMM over
split factors (3 products of 2 pieces, 6 of 3), with and without K and N padded to multiples of 8; do_bench medians,
L2 flushed. python3 split_gemm.py OUT.jsonl"""
import json, sys, torch, triton.testing
torch.backends.cuda.matmul.allow_tf32 = False
def us(fn): return min(triton.testing.do_bench(fn, warmup=10, rep=50, return_mode="median") for _ in range(2)) * 1e3
def pieces(t, n):
    out = []; r = t.clone()
    for _ in range(n):
        p = r.bfloat16(); out.append(p); r = r - p.float()
    return out
PAIRS = {2: [(0, 0), (1, 0), (0, 1)], 3: [(0, 0), (0, 1), (1, 0), (0, 2), (1, 1), (2, 0)]}
def build(a, b, n, pad):
    B, K = a.shape; N = b.shape[1]
    K8 = (K + 7) // 8 * 8 if pad else K; N8 = (N + 7) // 8 * 8 if pad else N
    ap, bp = pieces(a, n), pieces(b, n)
    P = len(PAIRS[n])
    A = torch.zeros(B, P * K8, dtype=torch.bfloat16, device="cuda")
    Bm = torch.zeros(P * K8, N8, dtype=torch.bfloat16, device="cuda")
    for j, (i, k) in enumerate(PAIRS[n]):
        A[:, j * K8:j * K8 + K] = ap[i]; Bm[j * K8:j * K8 + K, :N] = bp[k]
    return A, Bm[:, :N], N8
shapes = {"r06": (512, 2048, 1024), "r14": (65358, 220, 113), "r09": (50146, 50, 869), "r62": (43075, 133, 669),
          "r58": (125565, 69, 35), "r18": (70, 445, 2892), "r60": (73, 276, 3295), "r37": (24, 1439, 40),
          "sq1024": (1024, 1024, 1024), "big_bf16": (20000, 2000, 2800)}
out = open(sys.argv[1], "w")
for name, (B, K, N) in shapes.items():
    g = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(B, K, device="cuda", generator=g) * 30 + 5
    b = torch.randn(K, N, device="cuda", generator=g)
    exact = a.double() @ b.double()
    den = (a.double().abs() @ b.double().abs())
    row = dict(name=name, B=B, K=K, N=N, device=torch.cuda.get_device_name())
    c = torch.empty(B, N, device="cuda")
    row["sgemm"] = us(lambda: torch.mm(a, b, out=c))
    row["sgemm_err"] = ((c.double() - exact).abs() / den).max().item()
    for n in (2, 3):
        for pad in (False, True):
            A, Bm, N8 = build(a, b, n, pad)
            key = f"bf16x{len(PAIRS[n])}{'_pad' if pad else ''}"
            if pad:
                cbuf = torch.empty(B, N8, device="cuda"); cv = cbuf[:, :N]
                row[key] = us(lambda: torch.mm(A, Bm, out_dtype=torch.float32, out=cv))
                row[key + "_ldcN"] = us(lambda: torch.mm(A, Bm, out_dtype=torch.float32, out=c))
                res = cv
            else:
                row[key] = us(lambda: torch.mm(A, Bm, out_dtype=torch.float32, out=c))
                res = c
            row[key + "_err"] = ((res.double() - exact).abs() / den).max().item()
            del A, Bm
    print(json.dumps({k: (round(v, 2) if isinstance(v, float) and v > 1e-3 else v) for k, v in row.items()}), flush=True)
    out.write(json.dumps(row) + "\n"); out.flush()
    del a, b, exact, den, c; torch.cuda.empty_cache()
