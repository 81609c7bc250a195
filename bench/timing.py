"""GPU timing: CUDA-event medians with L2 flushed (triton.testing.do_bench), back-to-back launches, graph replays."""
import torch
import triton


def median_ms(fn, warmup_ms=25, rep_ms=200):
    """Median of event-timed runs, the L2 cache flushed before each."""
    return triton.testing.do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="median")


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
