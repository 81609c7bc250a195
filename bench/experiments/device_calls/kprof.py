"""Per-kernel times (torch.profiler medians) and do_bench of padded forwards. Run with a tree's PYTHONPATH.
python kprof.py TAG SPEC... ; SPEC: rNN:p | syn:B,C,H,W,dtype,kh,kw:p ; optional suffix @s0 / @s1 forces the stage."""
import contextlib, json, os, sys
sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
import torch
import fusedlse_cuda
from problems import random_problems, make_random_inputs, make_problem
from timing import median_ms
from kernel_times import kernel_us  # torch.profiler's median time of each kernel

tag = sys.argv[1]
problems = random_problems()
names = list(problems)
for spec in sys.argv[2:]:
    force = None
    if "@s" in spec:
        spec, f = spec.split("@s"); force = int(f)
    what, p = spec.rsplit(":", 1); p = int(p)
    if what.startswith("syn"):
        b, c, h, w, dt, kh, kw = what.split(":", 1)[1].split(",")
        args = make_problem(int(b), int(c), int(h), int(w), 4, int(kh), int(kw), dtype=getattr(torch, dt),
                            device="cuda", draw_on_device=True)
    else:
        args = make_random_inputs(problems[what], names.index(what))
    call = lambda: fusedlse_cuda.forward(*args, padding=p)
    try:
        from fusedlse_cuda import planning  # main's tree has no forced_tap_stage: its @s specs report an error
        with planning.forced_tap_stage(bool(force)) if force is not None else contextlib.nullcontext():
            k = kernel_us(call)
            ms = median_ms(call, 10, 60)
        ms0 = median_ms(lambda: fusedlse_cuda.forward(*args), 10, 60) if p and force is None else None
    except Exception as e:
        print(json.dumps(dict(tag=tag, spec=spec, force=force, error=str(e)[:300])), flush=True); continue
    print(json.dumps(dict(tag=tag, spec=spec, force=force, us=round(ms * 1e3, 1),
                          p0_us=None if ms0 is None else round(ms0 * 1e3, 1), kernels=k)), flush=True)
    del args; torch.cuda.empty_cache()
