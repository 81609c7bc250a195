"""Where a small padded forward's time goes: do_bench (L2 flushed), calls back to back, CUDA-graph replay (GPU only),
and the host's CPU time a call. python host.py TAG SPEC... (SPEC rNN:p)"""
import json, os, sys, time
sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
import torch, fusedlse_cuda
from problems import random_problems, make_random_inputs
from timing import median_ms, back_to_back_us, graph_replay_us
problems = random_problems(); names = list(problems)
for spec in sys.argv[2:]:
    name, p = spec.split(":")
    args = make_random_inputs(problems[name], names.index(name))
    fn = lambda: fusedlse_cuda.forward(*args, padding=int(p))
    fn(); torch.cuda.synchronize()
    # Host time: calls with a sync after each 5, the CPU time of the calls alone.
    host = []
    for _ in range(40):
        t0 = time.perf_counter()
        for _ in range(5): fn()
        host.append((time.perf_counter() - t0) / 5 * 1e6); torch.cuda.synchronize()
    host.sort()
    try:  # a forward that waits on the host (a pageable copy) cannot be captured: no graph time then
        graph_us = round(graph_replay_us(fn, 20, 10), 2)
    except RuntimeError as error:
        graph_us = f"not captured: {str(error)[:80]}"
        torch.cuda.synchronize()
    row = dict(tag=sys.argv[1], spec=spec, bench_us=round(median_ms(fn, 10, 100) * 1e3, 2),
               b2b_us=round(back_to_back_us(fn, 500), 2), graph_us=graph_us,
               host_us=round(host[len(host) // 2], 2))
    print(json.dumps(row), flush=True)
