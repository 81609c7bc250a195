# r25 and r59 of the public sweep (sliced_hw: x = big[:, :, 1:, 2:], as bench/problems.py sweep_layout), without
# building fusedlse (reference.py loaded alone): do_bench medians (L2 flushed) of the flat sum over big's storage, x.sum
# over H and W eager and compiled, the shortcut eager and compiled; torch.profiler's kernels of the compiled shortcut.
# Run in the repository root; writes $OUT/rivals.json (docs/limits.md section 92).
import json, os, sys, torch
import triton.testing as tt
import types, importlib.util
pkg = types.ModuleType("fusedlse_cuda")
pkg.__path__ = ["python/fusedlse_cuda"]
sys.modules["fusedlse_cuda"] = pkg
spec = importlib.util.spec_from_file_location("fusedlse_cuda.reference", "python/fusedlse_cuda/reference.py")
reference = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = reference
spec.loader.exec_module(reference)
torch.backends.cuda.matmul.allow_tf32 = False
OUT = os.environ["OUT"]
rows = {"r25": ((10253, 127, 333, 1, 17, 5, 5), torch.bfloat16), "r59": ((9346, 1570, 3, 1, 4, 4, 3), torch.float64)}
res = {}
for name, ((b, c, h, w, co, kh, kw), dt) in rows.items():
    big = torch.randn(b, c, h + 1, w + 2, device="cuda", dtype=dt)
    x = big[:, :, 1:, 2:]
    wt = torch.randn(c, co, kh, kw, device="cuda", dtype=dt)
    cb = torch.randn(co, device="cuda", dtype=dt); bias = torch.randn(co, 1, 1, device="cuda", dtype=dt)
    comp = torch.compile(reference.shortcut)
    sum_c = torch.compile(lambda t: t.sum(dim=(2, 3)))
    fns = {"flat_big_sum": lambda: big.sum(), "x_sum_hw": lambda: x.sum(dim=(2, 3)),
           "compiled_sum_hw": lambda: sum_c(x), "shortcut": lambda: reference.shortcut(x, wt, cb, bias),
           "compiled_shortcut": lambda: comp(x, wt, cb, bias)}
    r = {}
    for k, f in fns.items():
        f(); torch.cuda.synchronize()
        r[k] = tt.do_bench(f, warmup=50, rep=300, return_mode="median") * 1000
    from torch.profiler import profile, ProfilerActivity
    with profile(activities=[ProfilerActivity.CUDA]) as p:
        for _ in range(5): comp(x, wt, cb, bias)
        torch.cuda.synchronize()
    ev = {}
    for e in p.key_averages():
        if e.device_type.name == "CUDA": ev[e.key[:90]] = round(e.device_time_total / max(e.count, 1), 1)
    r["compiled_kernels_us"] = ev
    r["big_gb"] = big.numel() * big.element_size() / 1e9
    res[name] = r
    print(name, json.dumps(r, indent=1), flush=True)
    del big, x
json.dump(res, open(f"{OUT}/rivals.json", "w"), indent=1)
