"""cuBLAS's GEMM over bfloat16 pieces and a read of its float32 logits, whole or in batch ranges small enough for
the logits to stay in the L2 (docs/limits.md section 106): torch ops alone, no build. For each GEMM shape (B, C_in,
C_out): the pieces' GEMM (bfloat16 [rows, 3 x depth] x [3 x depth, C_out rounded up to 8] into float32) and
torch.logsumexp over each row's C_out logits, over all rows at once or range by range into one reused buffer of
CAP MiB; do_bench medians (L2 flushed before each whole call) and the host's time to issue one call.
python l2_ranges.py OUT.jsonl"""
import json
import sys
import time

import torch
import triton.testing

# r09, r62 and made-up rows of pieces_epilogues.py (m03, m11, m15, m21, m04, m18)
SHAPES = {"r09": (50146, 50, 869), "r62": (43075, 133, 669), "m03": (53013, 45, 2367), "m11": (32341, 39, 2279),
          "m15": (27032, 52, 4595), "m21": (272920, 52, 815), "m04": (41375, 150, 1239), "m18": (7072, 99, 2437)}
CAPS_MIB = (None, 4, 8, 16, 24, 32)


def run(rows, depth, cols, cap_mib, left, right, out, lse):
    step = rows if cap_mib is None else max(256, (cap_mib << 20) // (cols * 4))
    for b0 in range(0, rows, step):
        r = min(step, rows - b0)
        logits = out[:r]
        torch.mm(left[b0:b0 + r], right, out_dtype=torch.float32, out=logits)
        torch.logsumexp(logits, 1, out=lse[b0:b0 + r])


def main(path):
    with open(path, "a") as f:
        for name, (rows, channels, c_out) in SHAPES.items():
            depth, cols = -(-channels // 8) * 8 * 3, -(-c_out // 8) * 8
            left = torch.randn(rows, depth, device="cuda").bfloat16()
            right = torch.randn(depth, cols, device="cuda").bfloat16()
            out = torch.empty(rows, cols, device="cuda")
            lse = torch.empty(rows, device="cuda")
            row = dict(name=name, rows=rows, depth=depth, cols=cols, logits_mib=round(rows * cols * 4 / 2**20, 1),
                       device=torch.cuda.get_device_name(), us={}, host_us={})
            for cap in CAPS_MIB:
                fn = lambda: run(rows, depth, cols, cap, left, right, out, lse)  # noqa: E731
                fn()
                torch.cuda.synchronize()
                row["us"][str(cap)] = round(min(triton.testing.do_bench(fn, warmup=10, rep=40,
                                                                        return_mode="median")
                                                for _ in range(2)) * 1e3, 2)
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                for _ in range(10):
                    fn()
                row["host_us"][str(cap)] = round((time.perf_counter() - t0) / 10 * 1e6, 1)
                torch.cuda.synchronize()
            print(json.dumps(row), flush=True)
            f.write(json.dumps(row) + "\n")
            del left, right, out, lse
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main(sys.argv[1])
