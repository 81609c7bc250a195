"""r23's weight pulled into the L2 beside x's read (docs/limits.md section 74). r23 ([15, 686, 613, 1] float64
channels-last -> 3860, a 1 x 1 kernel: the weight is its own W.sum) runs torch's reduction (19.8 us, 2.5 TB/s), then
cuBLAS's GEMM, which reads the 21 MB weight from HBM (11.5 us), then the logsumexp. A kernel that loads the weight on a
second stream while x is read could leave it in the L2 for the GEMM. Standalone (torch and Triton only):

    python3 bench/experiments/weight_prefetch.py

Each line: do_bench's median (L2 flushed before each rep), us. The evict_last runs come after every plain run (their
lines may outlive the flush).

Run on the H200 on 2026-12-04 (best of 3 medians, us): r23's x.sum 27.4, the GEMM with the weight cold 15.5, the touch
alone 11.0, sum then GEMM 40.4; the touch first, then both: 53.9 (plain), 48.0 (evict_last), so the weight in the L2
saves the GEMM about 3.4 of its 15.5 us; beside the sum on a second stream 118.6 and 119.2 (the Python launches and
stream syncs, not the GPU's time). On [16, 1024, 32, 32] -> 4096 and [8, 2048, 24, 24] -> 2048 (33.6 MB weights)
the touch first cost 9-11 us more than it saved. No lead: cuBLAS's GEMM on 15 rows is not bound by the weight's
DRAM read (docs/limits.md section 74)."""
import torch
import triton
import triton.language as tl
from triton.testing import do_bench


@triton.jit
def touch_kernel(src, n, out, BLOCK: tl.constexpr, EVICT_LAST: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    if EVICT_LAST:
        values = tl.load(src + offsets, mask=offsets < n, other=0.0, eviction_policy="evict_last")
    else:
        values = tl.load(src + offsets, mask=offsets < n, other=0.0)
    tl.store(out + tl.program_id(0), tl.sum(values))


def touch(weight, scratch, evict_last):
    n = weight.numel()
    block = 2048
    touch_kernel[(triton.cdiv(n, block),)](weight, n, scratch, BLOCK=block, EVICT_LAST=evict_last)


def main():
    torch.manual_seed(0)
    dev = "cuda"
    print(torch.cuda.get_device_name(), flush=True)
    shapes = [(15, 686, 613, 1, 3860), (16, 1024, 32, 32, 4096), (8, 2048, 24, 24, 2048)]
    for batch, c_in, height, width, c_out in shapes:
        x = torch.randn(batch, c_in, height, width, dtype=torch.float64, device=dev)
        x = x.to(memory_format=torch.channels_last)
        weight = torch.randn(c_in, c_out, dtype=torch.float64, device=dev)
        scratch = torch.empty(triton.cdiv(weight.numel(), 2048), dtype=torch.float64, device=dev)
        side = torch.cuda.Stream()
        main_stream = torch.cuda.current_stream()

        def plain():
            return torch.mm(x.sum((2, 3)), weight)

        def beside(evict_last):
            def run():
                side.wait_stream(main_stream)
                with torch.cuda.stream(side):
                    touch(weight, scratch, evict_last)
                sums = x.sum((2, 3))
                main_stream.wait_stream(side)
                return torch.mm(sums, weight)
            return run

        def before(evict_last):
            def run():
                touch(weight, scratch, evict_last)
                return torch.mm(x.sum((2, 3)), weight)
            return run

        sums = x.sum((2, 3))
        want = plain()
        for fn in (beside(False), beside(True)):
            assert torch.equal(fn(), want)
        x_mb = x.numel() * 8 / 1e6
        w_mb = weight.numel() * 8 / 1e6
        print(f"[{batch}, {c_in}, {height}, {width}] float64 channels-last ({x_mb:.1f} MB) -> {c_out} "
              f"(weight {w_mb:.1f} MB)", flush=True)
        rows = [
            ("x.sum((2, 3))", lambda: x.sum((2, 3))),
            ("mm (weight cold)", lambda: torch.mm(sums, weight)),
            ("touch (plain)", lambda: touch(weight, scratch, False)),
            ("sum then mm", plain),
            ("touch beside the sum (plain)", beside(False)),
            ("touch, then sum, mm (plain)", before(False)),
            ("touch beside the sum (evict_last)", beside(True)),
            ("touch, then sum, mm (evict_last)", before(True)),
            ("sum then mm, after evict_last runs", plain),
        ]
        for label, fn in rows:
            times = [do_bench(fn, warmup=25, rep=200, return_mode="median") * 1e3 for _ in range(3)]
            print(f"  {label:40s} {min(times):8.2f} us", flush=True)
        x = weight = None
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
