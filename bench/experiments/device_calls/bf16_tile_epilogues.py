"""The split strategy's tiled and cuBLAS epilogues forced in turn on 16-bit GEMMs (docs/limits.md section 107: the
bfloat16 tensor-core tile that keeps its rows' pieces in shared memory), and the planned forward: do_bench medians, L2
flushed, the least of ROUNDS, with explain()'s tiled_tile and predictions. Run in each tree's process (main's tiled
epilogue is the SIMT tile there). Problems: public-sweep rows of 16-bit x with GEMMs, pieces_epilogues.py's made-up
ones and plan_changes.py's FLIPS, at padding 0.
python bf16_tile_epilogues.py OUT.jsonl"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402

import fusedlse_cuda  # noqa: E402
from fusedlse_cuda.planning import forced_plan  # noqa: E402
from pieces_epilogues import MADE_UP, epilogue_times  # noqa: E402
from plan_changes import FLIPS  # noqa: E402
from problems import make_problem, make_random_inputs, random_problems  # noqa: E402

SWEEP_ROWS = ("r06", "r09", "r14", "r18", "r33", "r37", "r58", "r62")


def problems():
    for index, (name, problem) in enumerate(random_problems().items()):
        if name in SWEEP_ROWS:
            yield name, make_random_inputs(problem, index)
    for i, (b, c, h, w, n, dtype, layout) in enumerate(MADE_UP):
        yield f"m{i:02d}", make_problem(b, c, h, w, n, 3, 3, dtype=getattr(torch, dtype), layout=layout,
                                        device="cuda", seed=i, draw_on_device=True)
    for i, (b, c, h, w, n) in enumerate(FLIPS):
        dtype = (torch.bfloat16, torch.float16)[i % 2]
        layout = ("contiguous", "channels_last")[i // 2 % 2]
        yield f"f{i:02d}", make_problem(b, c, h, w, n, 3, 3, dtype=dtype, layout=layout, device="cuda",
                                        seed=100 + i, draw_on_device=True)


def main(out):
    with open(out, "a") as f:
        for name, args in problems():
            x = args[0]
            plan = fusedlse_cuda.explain(x, args[1])
            with forced_plan("split", None, "tiled_lse"):
                tiled_plan = fusedlse_cuda.explain(x, args[1])
            row = dict(name=name, shape=list(x.shape), c_out=args[1].shape[1], dtype=str(x.dtype),
                       planned=plan["epilogue"], tiled_tile=tiled_plan.get("tiled_tile"),
                       tiled_us_pred=plan["tiled_us"], cublas_us_pred=plan["cublas_us"],
                       split_us_pred=plan["split_us"], device=torch.cuda.get_device_name())
            row.update(epilogue_times(args))
            f.write(json.dumps(row) + "\n")
            f.flush()
            del args, x
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main(sys.argv[1])
