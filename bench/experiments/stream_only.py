"""The stream epilogue forced (and the tiled one, an anchor to the earlier runs' times) on the problems of earlier
strategies runs: JSON rows in bench/strategies.py's form. Needs bench/experiments/stream_lse_epilogue.patch applied
(docs/limits.md section 52); run from the repository's root:

    python bench/experiments/stream_only.py OUT.json r23,r43,mid     # sweep rows and named problems
    python bench/experiments/stream_only.py OUT.json grid            # the few_rows grid of bench/problems.py
"""
import json
import sys

import torch

sys.path.insert(0, "bench")
from fusedlse_cuda.planning import explain  # noqa: E402
from problems import ENVELOPE_GRIDS, make_inputs, make_random_inputs, random_problems  # noqa: E402
from strategies import time_forward  # noqa: E402
from sweep import shortcut_f64  # noqa: E402

out_path, which = sys.argv[1], sys.argv[2]
rand = random_problems()
if which == "grid":
    grid = ENVELOPE_GRIDS["few_rows"]
    items = [(name, lambda i=i, n=name: make_random_inputs(grid[n], index=i)) for i, name in enumerate(grid)]
else:
    names = which.split(",")
    items = [(n, (lambda n=n: make_random_inputs(rand[n], int(n[1:]))) if n in rand else (lambda n=n: make_inputs(n)))
             for n in names]
rows = []
for name, make in items:
    args = make()
    x = args[0]
    truth = shortcut_f64(*args)
    row = dict(shape=name, dims=list(x.shape) + [args[1].shape[1]], dtype=str(x.dtype).split(".")[-1],
               plan=explain(x, args[1]), times={}, errors={})
    for label, plan in (("auto", None), ("split_stream", ("split", None, "stream_lse")),
                        ("split_tiled", ("split", None, "tiled_lse"))):
        time_forward(row, label, args, truth, plan)
    rows.append(row)
    t = row["times"]
    bad = [k for k, e in row["errors"].items() if isinstance(e, str) or e > 1e-2]
    print(f"{name:20s} {str(row['dims']):30s} {row['dtype']:8s} "
          + " ".join(f"{k}={v * 1e3:.1f}" for k, v in t.items())
          + f" plan={row['plan']['epilogue']} stream_pred={row['plan']['stream_us']:.1f}"
          + (f" BAD {bad} {row['errors']}" if bad else ""), flush=True)
    del args, x
    torch.cuda.empty_cache()
json.dump(rows, open(out_path, "w"), indent=1)
