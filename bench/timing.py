"""Timing. GPU: CUDA-event medians with L2 flushed (triton.testing.do_bench), back-to-back launches, graph replays.
CPU: the best of several interleaved batches of calls on the host clock."""
import time

import torch


def median_ms(fn, warmup_ms=25, rep_ms=200):
    """Median of event-timed runs, the L2 cache flushed before each."""
    import triton.testing

    return triton.testing.do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="median")


def host_best_ms(fns, rounds=11, batch_s=0.1):
    """CPU time per call of each of `fns` (name -> callable): the best of `rounds` timed batches of about batch_s
    seconds each, after warm-up calls (at least 2, at least 0.05 s). The rounds interleave the callables, so a
    spell of other work on the machine slows every one of them alike, and the best batch leaves it out; on a busy
    2-core machine this keeps two runs within a few percent, where the median of one callable's batches in a row
    moved by 30%."""
    calls = {}
    for name, fn in fns.items():
        start, warmups = time.perf_counter(), 0
        while warmups < 2 or time.perf_counter() - start < 0.05:
            fn()
            warmups += 1
        calls[name] = max(1, round(batch_s * warmups / (time.perf_counter() - start)))
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) * 1000 / calls[name])
    return best


def back_to_back_us(fn, calls=2000):
    """Per-call time of many eager calls issued back to back (launch-bound shapes)."""
    for _ in range(20):
        fn()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(calls):
        fn()
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) * 1000 / calls


def graph_replay_us(fn, calls_per_graph=100, replays=20):
    """Per-call time of fn captured calls_per_graph times in one CUDA graph and replayed."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls_per_graph):
            fn()
    graph.replay()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(replays):
        graph.replay()
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) * 1000 / (replays * calls_per_graph)
