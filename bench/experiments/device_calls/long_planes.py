"""Few long contiguous planes (the plane-lanes reader's block-a-plane rule, tuning.h kBlockPerPlaneMinWave): the
forward by the rule and with 1/2/4/8 pieces a plane forced, against torch's flat sum of the same bytes; do_bench
medians, L2 flushed, best of ROUNDS. python long_planes.py OUT.jsonl"""
import contextlib, json, os, sys
sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
import torch
import fusedlse_cuda
from fusedlse_cuda.planning import forced_plane_lanes_pieces
from timing import median_ms

ROUNDS = int(os.environ.get("ROUNDS", "2"))
D = dict(f64=torch.float64, f32=torch.float32, bf16=torch.bfloat16, f16=torch.float16)
SHAPES = [("r35", 199, 4, 88887, 1, "f64"), ("bf16_512_528", 66, 8, 512, 512, "bf16"),
          ("bf16_512_800", 100, 8, 512, 512, "bf16"), ("bf16_512_1056", 132, 8, 512, 512, "bf16"),
          ("f32_256_800", 100, 8, 256, 256, "f32"), ("f32_509_800", 100, 8, 509, 509, "f32"),
          ("f64_256_800", 100, 8, 256, 256, "f64"), ("f16_300_952", 119, 8, 300, 300, "f16"),
          ("f32_1024_600", 75, 8, 1024, 1024, "f32"), ("f32_2048_560", 70, 8, 2048, 1024, "f32")]
MODES = [0, 1, 2, 4, 8]
with open(sys.argv[1], "a") as f:
    for name, b, c, h, w, dt in SHAPES:
        x = torch.randn(b, c, h, w, device="cuda", dtype=D[dt])
        wt = torch.randn(c, 16, 3, 3, device="cuda", dtype=D[dt])
        bias = torch.randn(16, device="cuda", dtype=D[dt])
        bias2 = torch.randn(16, 1, 1, device="cuda", dtype=D[dt])
        flat = x.view(-1)
        best = {m: float("inf") for m in MODES}
        best["flat"] = float("inf")
        ref = fusedlse_cuda.forward(x, wt, bias, bias2)
        for _ in range(ROUNDS):
            best["flat"] = min(best["flat"], median_ms(lambda: flat.sum(), 10, 60) * 1e3)
            for m in MODES:
                with forced_plane_lanes_pieces(m) if m else contextlib.nullcontext():
                    fn = lambda: fusedlse_cuda.forward(x, wt, bias, bias2)
                    out = fn()
                    assert torch.allclose(out.double(), ref.double(), rtol=1e-2, atol=1e-2), (name, m)
                    best[m] = min(best[m], median_ms(fn, 10, 60) * 1e3)
        row = dict(name=name, planes=b * c, elems=h * w, dtype=dt, us={str(k): round(v, 2) for k, v in best.items()},
                   plan=str(fusedlse_cuda.explain(x, wt).get("reader")))
        f.write(json.dumps(row) + "\n"); f.flush(); print(row, flush=True)
        del x; torch.cuda.empty_cache()
