"""Each kernel's own time in padded forwards and their padding-0 forwards, under Nsight Compute (docs/limits.md §117:
torch.profiler's durations overlap under programmatic launch, a kernel's blocks counting their wait for the grid
ahead; ncu runs one kernel at a time, so gpu__time_duration is its work alone). Two steps:

    ncu --clock-control none --cache-control none --profile-from-start off --metrics gpu__time_duration.sum --csv \
        python3 pad_ncu.py run rNN:p ... > NCU.csv    # in a built tree's root, PYTHONPATH=python:bench
    python3 pad_ncu.py table NCU.csv > OUT.jsonl          # one JSON line a (pair, padding): its kernels in order, µs

`run` warms each forward up, then profiles one call of it (padding p, then padding 0) between cudaProfilerStart and
Stop, after a marker kernel (torch.cuda._sleep's spin kernel), and prints the call's name on a line of its own;
`table` cuts ncu's rows at the markers and names each part in that order. callPN.sh runs both."""
import csv
import json
import re
import sys

# ncu's units of gpu__time_duration: "ns" on the H100 of docs/limits.md §118 (the first run read them as µs).
MICROSECONDS_PER_UNIT = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3}


def run(specs):
    import torch

    import fusedlse_cuda
    from problems import make_random_inputs, random_problems

    problems = random_problems()
    names = list(problems)
    for spec in specs:
        name, padding = spec.split(":")
        args = make_random_inputs(problems[name], names.index(name))
        for p in (int(padding), 0):
            call = lambda: fusedlse_cuda.forward(*args, padding=p)  # noqa: E731
            for _ in range(3):
                call()
            torch.cuda.synchronize()
            print(f"pad_ncu call {name}:{p}", flush=True)
            torch.cuda.profiler.start()
            torch.cuda._sleep(1)  # the marker: a kernel of its own name before the call's
            call()
            torch.cuda.synchronize()
            torch.cuda.profiler.stop()
        del args
        torch.cuda.empty_cache()


def table(path):
    # ncu's --csv rows: one per (kernel launch, metric), in launch order, after a header row; the run's own lines
    # ("pad_ncu call NAME:P") come before them, in the calls' order.
    with open(path) as f:
        lines = f.readlines()
    calls = [line.split()[-1] for line in lines if line.startswith("pad_ncu call ")]
    rows = [row for row in csv.DictReader(line for line in lines if line.startswith('"'))
            if row.get("Metric Name") == "gpu__time_duration.sum"]
    parts = []
    for row in rows:
        # Without "void ", the namespaces' "(anonymous namespace)::" and the parameter list.
        kernel = re.sub(r"\([^()]*\)$", "", row["Kernel Name"].replace("(anonymous namespace)::", ""))
        kernel = kernel.removeprefix("void ")
        if "spin_kernel" in kernel:
            parts.append([])
            continue
        scale = MICROSECONDS_PER_UNIT.get(row.get("Metric Unit"), 1.0)
        us = float(row["Metric Value"].replace(",", "")) * scale
        if parts:
            parts[-1].append((kernel[:80], round(us, 2)))
    for call, kernels in zip(calls, parts):
        print(json.dumps(dict(call=call, us=round(sum(us for _, us in kernels), 2), kernels=kernels)))
    if len(calls) != len(parts):
        print(json.dumps(dict(warning=f"{len(calls)} calls, {len(parts)} markers")))


if __name__ == "__main__":
    if sys.argv[1] == "run":
        sys.path.insert(0, "bench")
        run(sys.argv[2:])
    else:
        table(sys.argv[2])
