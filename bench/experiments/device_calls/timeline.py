"""A padded forward's kernels on the GPU's clock: each kernel's start after the call's first kernel starts, and its
duration (torch.profiler, medians over calls that each follow an L2 flush on an idle GPU), the call's span (first
start to last end), do_bench of the call, and the same for padding 0 on the same x; explain's plan beside them.
python timeline.py OUT.jsonl SPEC... (SPEC rNN:p). docs/limits.md §125."""
import json, os, sys, time
sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
import torch, fusedlse_cuda
from problems import random_problems, make_random_inputs
from timing import median_ms

CALLS = 30
flush = torch.empty(64 * 2**20, dtype=torch.int32, device="cuda")  # 256 MiB: more than the L2


def kernel_names(fn):
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        fn(); torch.cuda.synchronize()
    return {e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA}


def timeline(fn):
    flush_names = kernel_names(lambda: flush.zero_())
    fn(); torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(CALLS):
            flush.zero_(); fn(); torch.cuda.synchronize(); time.sleep(0.002)
    events = sorted(((e.time_range.start, e.time_range.end, e.name) for e in prof.events()
                     if e.device_type == torch.autograd.DeviceType.CUDA), key=lambda t: t[0])
    calls, current = [], []
    for start, end, name in events:
        if name in flush_names:  # a flush ends one call and starts the next
            if current: calls.append(current)
            current = []
            continue
        current.append((start, end, name))
    if current: calls.append(current)
    count = max(set(len(c) for c in calls), key=[len(c) for c in calls].count)
    calls = [c for c in calls if len(c) == count]
    med = lambda v: sorted(v)[len(v) // 2]
    kernels = []
    for i in range(count):
        kernels.append(dict(name=calls[0][i][2][:90], start=round(med([c[i][0] - c[0][0] for c in calls]), 1),
                            us=round(med([c[i][1] - c[i][0] for c in calls]), 1)))
    span = med([max(e for _, e, _ in c) - c[0][0] for c in calls])
    return dict(span=round(span, 1), calls=len(calls), kernels=kernels)


problems = random_problems(); names = list(problems)
with open(sys.argv[1], "w") as out:
    for spec in sys.argv[2:]:
        name, p = spec.split(":"); p = int(p)
        try:
            x, w, cb, b = args = make_random_inputs(problems[name], names.index(name))
            plan = fusedlse_cuda.explain(x, w, padding=p)
            row = dict(spec=spec, plan={k: v for k, v in plan.items() if not isinstance(v, (list, dict))})
            for q in (0, p):
                fn = lambda: fusedlse_cuda.forward(*args, padding=q)
                row[f"p{q}"] = dict(do_bench_us=round(median_ms(fn, 10, 100) * 1e3, 1), **timeline(fn))
        except Exception as e:
            row = dict(spec=spec, error=str(e)[:300])
        out.write(json.dumps(row) + "\n"); out.flush()
        print(spec, row.get("p0", {}).get("span"), row.get(f"p{p}", {}).get("span"), flush=True)
        args = None; torch.cuda.empty_cache()
