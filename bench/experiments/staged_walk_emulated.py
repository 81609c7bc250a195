"""The tap reader's staged walk (csrc/cuda/kernels/read_tap_rows.cuh staged_walk, with tap_run's kStaged path),
emulated lane by lane in Python without a GPU (docs/limits.md §84): random planes (2-, 4- and 8-byte elements, rows of
2 to 120 elements with gaps, 1 to 40 rows, planes off 16 bytes), cuts of 0 to 3 border rows and columns a side, runs
of any length and stages of any size the host allows. Each run's partials and each border row's cells are checked
against brute force, every cell written once, and every read of the stage must find what this piece stored.

    python3 bench/experiments/staged_walk_emulated.py [seed] [cases]
"""
import random, sys

def segment_of(head, tail, segments, i, extent):
    if i < head: return i
    if i >= extent - tail: return segments - (extent - i)
    return head

def partial_column_segment(k, chead, middle_col):
    border = k - 1
    return chead if k == 0 else (border if border < chead else border + (1 if middle_col else 0))

def run_case(rng):
    elem = rng.choice([2, 4, 8]); vec = 16 // elem
    W = rng.randint(2, 120); gap = rng.choice([0, 0, 0, rng.randint(1, 12)])
    stride = W + gap
    H = rng.randint(1, 40)
    # a cut: head, middle and tail disjoint (fusedlse.h Cut)
    rhead = rng.randint(0, min(3, H)); rtail = rng.randint(0, min(3, H - rhead))
    chead = rng.randint(0, min(3, W)); ctail = rng.randint(0, min(3, W - chead))
    rsegments = rhead + rtail + (1 if H > rhead + rtail else 0)
    csegments = chead + ctail + (1 if W > chead + ctail else 0)
    middle_col = W - ctail > chead
    stage_elements_min = W + vec - 1
    stage_elements = rng.randint(stage_elements_min, max(stage_elements_min, 4096 // elem))
    stage_rows = (stage_elements - W - (vec - 1)) // stride + 1
    chunk_rows = rng.randint(1, H)
    lead_plane = rng.randint(0, vec - 1)  # the plane's first element's place in its 16-byte granule
    size = lead_plane + (H - 1) * stride + W + 2 * vec
    mem = [rng.randint(-1000, 1000) for _ in range(size)]
    def x(i, j): return mem[lead_plane + i * stride + j]
    partials_out, cells_out = {}, {}
    for first_row in range(0, H, chunk_rows):
        end_row = min(first_row + chunk_rows, H)
        # RunSums per lane
        mid = [0] * 32; headc = [[0] * 32 for _ in range(chead)]; tailc = [[0] * 32 for _ in range(ctail)]
        def add(lane, col, value):
            if chead <= col < W - ctail: mid[lane] += value
            elif col < W:
                if col < chead: headc[col][lane] += value
                else: tailc[col - (W - ctail)][lane] += value
        piece = first_row
        while piece < end_row:
            rows = min(stage_rows, end_row - piece)
            start = lead_plane + piece * stride  # in elements from a 16-byte boundary
            lead = start % vec
            stage_end = lead + (rows - 1) * stride + W
            assert stage_end <= stage_elements, (stage_end, stage_elements)
            first_vector = 1 if lead > 0 else 0; end_vector = stage_end // vec
            stage = [None] * stage_elements
            for e in range(first_vector, end_vector):
                for k in range(vec): stage[e * vec + k] = mem[start - lead + e * vec + k]
            for lane in range(32):
                at = lead + lane if lane < vec else max(first_vector, end_vector) * vec + (lane - vec)
                in_lead = lane < vec and at < min(first_vector * vec, stage_end)
                if in_lead or (vec <= lane < 2 * vec and at < stage_end):
                    stage[at] = mem[start - lead + at]
            def rd(idx):
                assert 0 <= idx < stage_elements and stage[idx] is not None, ('stale', idx)
                return stage[idx]
            piece_end = piece + rows
            mfirst = max(piece, rhead); mend = min(piece_end, H - rtail)
            row_lanes = 32 // W if W < 32 else 1
            for lane in range(32):
                lane_row = lane // W if W < 32 else 0
                if not (mfirst < mend and lane_row < row_lanes): continue
                lane_rows = (mend - mfirst - lane_row + row_lanes - 1) // row_lanes
                step = row_lanes * stride
                col = lane - lane_row * W
                while col < W:
                    column = 0
                    base = lead + (mfirst - piece + lane_row) * stride + col
                    for j in range(lane_rows): column += rd(base + j * step)
                    add(lane, col, column)
                    col += 32
            head_rows = max(0, min(piece_end, rhead) - piece)
            tail_from = max(piece, max(rhead, H - rtail))
            border_rows = head_rows + max(0, piece_end - tail_from)
            border_cols = chead + ctail
            for k in range(border_rows):
                i = piece + k if k < head_rows else tail_from + (k - head_rows)
                rowbase = lead + (i - piece) * stride
                middle = 0
                for lane in range(32):
                    c0 = chead + lane
                    while c0 < W - ctail: middle += rd(rowbase + c0); c0 += 32
                seg = segment_of(rhead, rtail, rsegments, i, H)
                if middle_col:
                    key = (seg, chead); assert key not in cells_out, ('twice', key); cells_out[key] = middle
                for lane in range(border_cols):
                    own = lane if lane < chead else W - ctail + (lane - chead)
                    key = (seg, partial_column_segment(1 + lane, chead, middle_col))
                    assert key not in cells_out, ('twice', key); cells_out[key] = rd(rowbase + own)
            piece += stage_rows
        partials_out[first_row] = [sum(mid)] + [sum(h) for h in headc] + [sum(t) for t in tailc]
    # brute force
    for first_row in range(0, H, chunk_rows):
        end_row = min(first_row + chunk_rows, H)
        mrows = [i for i in range(first_row, end_row) if rhead <= i < H - rtail]
        want = [sum(x(i, j) for i in mrows for j in range(chead, W - ctail))]
        want += [sum(x(i, j) for i in mrows) for j in range(chead)]
        want += [sum(x(i, j) for i in mrows) for j in range(W - ctail, W)]
        assert partials_out[first_row] == want, (first_row, partials_out[first_row], want)
    want_cells = {}
    for i in range(H):
        if rhead <= i < H - rtail: continue
        seg = segment_of(rhead, rtail, rsegments, i, H)
        if middle_col: want_cells[(seg, chead)] = sum(x(i, j) for j in range(chead, W - ctail))
        for k in range(chead + ctail):
            own = k if k < chead else W - ctail + (k - chead)
            want_cells[(seg, partial_column_segment(1 + k, chead, middle_col))] = x(i, own)
    assert all(0 <= r < rsegments and 0 <= q < csegments for r, q in cells_out), 'outside the grid'
    assert cells_out == want_cells, (sorted(cells_out.items())[:5], sorted(want_cells.items())[:5])
    return H, W, stride, rhead, rtail, chead, ctail, stage_rows, chunk_rows

rng = random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
multi = 0
for t in range(n):
    r = run_case(rng)
    multi += r[7] < (r[0])
print(n, 'cases passed;', multi, 'with more than one piece possible')
