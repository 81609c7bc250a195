"""Where a split forward's time goes after its reader (docs/limits.md section 102): for each named shape, the
kernels of calls issued back to back (torch.profiler's trace: each kernel's start after the call's first kernel, and
its duration), the span of a call and the time after its longest kernel (the reader), beside do_bench medians of the
forward, of the fused launch forced, of sum_hw alone and of torch's x.sum(dim=(2, 3)) and flat t.sum().
Run in a built tree: PYTHONPATH=python:. python3 tails.py OUT.jsonl [shape ...]"""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
import torch  # noqa: E402
import fusedlse_cuda  # noqa: E402
from fusedlse_cuda import planning  # noqa: E402
from problems import make_inputs  # noqa: E402
from timing import median_ms  # noqa: E402

SHAPES = ["headline", "headline_bf16", "headline_fp16", "headline_nhwc", "odd509", "mid", "short_rows", "skinny"]
CALLS = 12


def timeline(fn):
    """Kernels (name, start after the call's first kernel, duration, us) of the median call of CALLS issued back to
    back, and the calls' median span."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(CALLS):
            fn()
        torch.cuda.synchronize()
    path = tempfile.mktemp(suffix=".json")
    prof.export_chrome_trace(path)
    with open(path) as f:
        events = json.load(f)["traceEvents"]
    os.remove(path)
    kernels = sorted((e for e in events if e.get("cat") == "kernel"), key=lambda e: e["ts"])
    per_call = len(kernels) // CALLS
    if per_call == 0 or len(kernels) % CALLS:
        return dict(error=f"{len(kernels)} kernels over {CALLS} calls", names=[e["name"][:60] for e in kernels[:12]])
    calls = [kernels[i * per_call:(i + 1) * per_call] for i in range(CALLS)]
    spans = sorted(c[-1]["ts"] + c[-1]["dur"] - c[0]["ts"] for c in calls)
    middle = calls[CALLS // 2]
    t0 = middle[0]["ts"]
    longest = max(middle, key=lambda e: e["dur"])
    return dict(span_us=round(spans[CALLS // 2], 1),
                after_longest_us=round(middle[-1]["ts"] + middle[-1]["dur"] - longest["ts"] - longest["dur"], 1),
                before_longest_us=round(longest["ts"] - t0, 1),
                kernels=[(e["name"][:70], round(e["ts"] - t0, 1), round(e["dur"], 1)) for e in middle])


def main(out_path, names):
    with open(out_path, "a") as out:
        for name in names:
            args = make_inputs(name)
            x = args[0]
            flat = torch.empty(x.numel(), dtype=x.dtype, device="cuda").normal_()
            row = dict(name=name, device=torch.cuda.get_device_name())
            try:
                row["explain"] = {k: str(v) for k, v in fusedlse_cuda.explain(x, args[1]).items()}
            except Exception as e:  # noqa: BLE001
                row["explain"] = str(e)[:200]
            call = lambda: fusedlse_cuda.forward(*args)  # noqa: E731
            row["us"] = dict(forward=median_ms(call) * 1e3, sum_hw=median_ms(lambda: fusedlse_cuda.sum_hw(x)) * 1e3,
                             torch_sum_hw=median_ms(lambda: x.sum(dim=(2, 3))) * 1e3,
                             flat_sum=median_ms(lambda: flat.sum()) * 1e3)
            try:
                with planning.forced_plan("fused"):
                    row["us"]["fused_forced"] = median_ms(call) * 1e3
                    row["timeline_fused"] = timeline(call)
            except Exception as e:  # noqa: BLE001
                row["fused_error"] = str(e)[:200]
            row["us"] = {k: round(v, 1) for k, v in row["us"].items()}
            row["timeline"] = timeline(call)
            print(json.dumps(row), file=out, flush=True)
            t = row["timeline"]
            print(name, row["us"], "span", t.get("span_us"), "after", t.get("after_longest_us"), "before",
                  t.get("before_longest_us"), flush=True)
            del args, x, flat
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] or SHAPES)
