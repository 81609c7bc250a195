"""How fast a plain kernel reads the headline's x (docs/limits.md section 102): a Triton kernel summing [16, 64, 512,
512] planes in pieces (PIECES a plane, BLOCK elements a load, WARPS warps, evict-first loads) in bfloat16 and float32,
against torch's x.sum(dim=(2, 3)) and flat t.sum() of the same x, and, where a build of fusedlse imports, its sum_hw
(the reader alone) and forward; do_bench medians with L2 flushed, each the least of 2 rounds. Needs no build of
fusedlse. python3 read_floor.py OUT.jsonl (PYTHONPATH=python:. in a built tree for fusedlse's rows)"""
import itertools
import json
import sys

import torch
import triton
import triton.language as tl
import triton.testing


@triton.jit
def piece_sums(x_ptr, out_ptr, piece: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    base = x_ptr + pid * piece
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, piece, BLOCK):
        acc += tl.load(base + start + tl.arange(0, BLOCK), eviction_policy="evict_first").to(tl.float32)
    tl.store(out_ptr + pid, tl.sum(acc))


def best_us(fn):
    return min(triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median") for _ in range(2)) * 1e3


def main(out_path):
    rows = []
    for dtype in (torch.bfloat16, torch.float32):
        x = torch.randn(16, 64, 512, 512, device="cuda", dtype=dtype)
        planes, plane = 16 * 64, 512 * 512
        row = dict(dtype=str(dtype), device=torch.cuda.get_device_name(),
                   torch_sum_hw=best_us(lambda: x.sum(dim=(2, 3))), flat_sum=best_us(lambda: x.sum()))
        try:
            import fusedlse_cuda
            weight = torch.randn(64, 128, 3, 3, device="cuda", dtype=dtype)
            bias = torch.randn(128, 1, 1, device="cuda", dtype=dtype)
            row["fusedlse_sum_hw"] = best_us(lambda: fusedlse_cuda.sum_hw(x))
            row["fusedlse_forward"] = best_us(lambda: fusedlse_cuda.forward(x, weight, None, bias))
        except ImportError:
            pass
        expected = x.float().sum(dim=(2, 3)).flatten()
        configs = []
        for pieces, block, warps in itertools.product((1, 4, 16), (4096, 8192), (4, 8)):
            partial = torch.empty(planes * pieces, device="cuda", dtype=torch.float32)
            call = lambda: piece_sums[(planes * pieces,)](x, partial, plane // pieces, block, num_warps=warps)  # noqa
            call()
            err = (partial.view(planes, pieces).sum(1) - expected).abs().max().item()
            configs.append(dict(pieces=pieces, block=block, warps=warps, us=best_us(call), err=err))
        configs.sort(key=lambda c: c["us"])
        row["triton_best"] = configs[:5]
        row["triton_worst"] = configs[-1]
        rows.append(row)
        print(json.dumps(row), flush=True)
        del x
        torch.cuda.empty_cache()
    with open(out_path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
