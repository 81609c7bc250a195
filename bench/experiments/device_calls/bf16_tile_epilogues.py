"""The split strategy's tiled and cuBLAS epilogues forced in turn on 16-bit GEMMs (docs/limits.md section 107: the
bfloat16 tensor-core tile that keeps its rows' pieces in shared memory), and the planned forward: do_bench medians, L2
flushed, the least of ROUNDS, with explain()'s tiled_tile and predictions. Run in each tree's process (main's tiled
epilogue is the SIMT tile there). Problems: public-sweep rows of 16-bit x with GEMMs, pieces_epilogues.py's made-up
ones and plan_changes.py's FLIPS, at padding 0.
python bf16_tile_epilogues.py OUT.jsonl"""
import os
import sys

sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402

from pieces_epilogues import append_row, epilogue_times, plan_row  # noqa: E402
from pieces_epilogues import problems as pieces_problems  # noqa: E402
from plan_changes import FLIPS  # noqa: E402
from problems import make_problem  # noqa: E402

SWEEP_ROWS = ("r06", "r09", "r14", "r18", "r33", "r37", "r58", "r62")


def problems():
    yield from pieces_problems(SWEEP_ROWS)
    for i, (b, c, h, w, n) in enumerate(FLIPS):
        dtype = (torch.bfloat16, torch.float16)[i % 2]
        layout = ("contiguous", "channels_last")[i // 2 % 2]
        yield f"f{i:02d}", make_problem(b, c, h, w, n, 3, 3, dtype=dtype, layout=layout, device="cuda",
                                        seed=100 + i, draw_on_device=True)


def main(out):
    with open(out, "a") as f:
        for name, args in problems():
            row = plan_row(name, args)
            row.update(epilogue_times(args))
            del args
            append_row(f, row)


if __name__ == "__main__":
    main(sys.argv[1])
