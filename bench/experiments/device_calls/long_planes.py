"""Few long contiguous planes, where the plane-lanes reader gives a plane a block or cuts it into pieces
(docs/limits.md section 96): the forward under each of MODES against torch's flat sum of the same bytes, do_bench
medians with the L2 flushed, the modes alternating ROUNDS times, each keeping its least.
MODES (comma-separated, default "rule,turns,pieces2,pieces4"): "rule" (the planner's), "turns" (a block a turn:
planning.forced_plane_lanes_persistent(False), main's grid before s68), "persistent" (forced persistent),
"piecesN" (planning.forced_plane_lanes_pieces(N)). Each forward is checked against the rule's output first.
python long_planes.py OUT.jsonl"""
import contextlib
import json
import os
import sys

sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
import torch  # noqa: E402

import fusedlse_cuda  # noqa: E402
from fusedlse_cuda.planning import forced_plane_lanes_persistent, forced_plane_lanes_pieces  # noqa: E402
from timing import median_ms  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "3"))
MODES = os.environ.get("MODES", "rule,turns,pieces2,pieces4").split(",")
DTYPES = dict(f64=torch.float64, f32=torch.float32, bf16=torch.bfloat16, f16=torch.float16)
# (name, B, C_in, H, W, dtype): r35 of the sweep, then planes of 64K-2M elements at about half a wave of 1056 blocks
# (528 planes) to one, and past it.
SHAPES = [("r35", 199, 4, 88887, 1, "f64"), ("bf16_512_528", 66, 8, 512, 512, "bf16"),
          ("bf16_512_800", 100, 8, 512, 512, "bf16"), ("bf16_512_1056", 132, 8, 512, 512, "bf16"),
          ("f32_256_800", 100, 8, 256, 256, "f32"), ("f32_509_800", 100, 8, 509, 509, "f32"),
          ("f64_256_800", 100, 8, 256, 256, "f64"), ("f16_300_952", 119, 8, 300, 300, "f16"),
          ("f32_1024_600", 75, 8, 1024, 1024, "f32"), ("f32_2048x1024_560", 70, 8, 2048, 1024, "f32")]


def mode_context(mode):
    if mode == "rule":
        return contextlib.nullcontext()
    if mode in ("turns", "persistent"):
        return forced_plane_lanes_persistent(mode == "persistent")
    if mode.startswith("pieces"):
        return forced_plane_lanes_pieces(int(mode[len("pieces"):]))
    raise ValueError(f"unknown mode {mode!r}")


with open(sys.argv[1], "a") as f:
    for name, b, c, h, w, dtype_name in SHAPES:
        dtype = DTYPES[dtype_name]
        x = torch.randn(b, c, h, w, device="cuda", dtype=dtype)
        weight = torch.randn(c, 16, 3, 3, device="cuda", dtype=dtype)
        conv_bias = torch.randn(16, device="cuda", dtype=dtype)
        bias = torch.randn(16, 1, 1, device="cuda", dtype=dtype)
        flat = x.view(-1)
        expected = fusedlse_cuda.forward(x, weight, conv_bias, bias).double()
        best = {mode: float("inf") for mode in ["flat_sum"] + MODES}
        for _ in range(ROUNDS):
            best["flat_sum"] = min(best["flat_sum"], median_ms(flat.sum, 10, 60) * 1e3)
            for mode in MODES:
                with mode_context(mode):
                    def fn():
                        return fusedlse_cuda.forward(x, weight, conv_bias, bias)
                    torch.testing.assert_close(fn().double(), expected, rtol=1e-2, atol=1e-2)
                    best[mode] = min(best[mode], median_ms(fn, 10, 60) * 1e3)
        row = dict(name=name, planes=b * c, elements=h * w, dtype=dtype_name, reader=fusedlse_cuda.explain(x, weight)
                   .get("reader"), us={mode: round(t, 2) for mode, t in best.items()})
        f.write(json.dumps(row) + "\n")
        f.flush()
        print(row, flush=True)
        del x, flat
        torch.cuda.empty_cache()
