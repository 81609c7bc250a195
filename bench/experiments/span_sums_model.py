"""A model of s109's span sums (bench/experiments/s109_next.mbox, kernels/read_tap_rows.cuh staged_walk with
TapSumsArgs::stage_span_sums; docs/limits.md §121), no GPU: over random rows (W 2-70, no gap), plane offsets, pieces,
border rows and columns (0-8 a side, a middle column) and vector widths 2, 4, 8, each element's count in a piece's
staged vectors and edge elements, less the border rows' elements and the middle rows' border columns, is 1 on the
middle rows' middle columns and 0 on every other element of the piece (and nothing outside it is touched).

    python span_sums_model.py"""
import random
from collections import Counter

random.seed(1)
for trial in range(20000):
    kvec = random.choice([2, 4, 8])
    W = random.randint(2, 70)
    H = random.randint(1, 40)
    head_r, tail_r = random.randint(0, 8), random.randint(0, 8)
    if head_r + tail_r > H:
        continue
    head_c, tail_c = random.randint(0, 8), random.randint(0, 8)
    if head_c + tail_c >= W:  # stage_span_sums needs a middle column
        continue
    stride = W
    plane_off = random.randint(0, kvec - 1)   # plane start, elements past a 16-byte boundary
    stage_rows = random.randint(1, H)
    first_row = random.randint(0, H - 1)
    end_row = random.randint(first_row + 1, H)
    for piece in range(first_row, end_row, stage_rows):
        rows = min(stage_rows, end_row - piece)
        lead = (plane_off + piece * stride) % kvec
        stage_end = lead + (rows - 1) * stride + W
        first_vector = 1 if lead > 0 else 0
        end_vector = stage_end // kvec
        count = Counter()
        for e in range(first_vector, end_vector):
            for k in range(kvec): count[e * kvec + k] += 1
        for lane in range(32):
            at = lead + lane if lane < kvec else max(first_vector, end_vector) * kvec + (lane - kvec)
            if ((lane < kvec and at < min(first_vector * kvec, stage_end)) or
                    (kvec <= lane < 2 * kvec and at < stage_end)):
                count[at] += 1
        piece_end = piece + rows
        middle_first, middle_end = max(piece, head_r), min(piece_end, H - tail_r)
        if not middle_first < middle_end:
            continue
        border_cols = [k if k < head_c else W - tail_c + (k - head_c) for k in range(head_c + tail_c)]
        for i in range(middle_first, middle_end):
            for c in border_cols: count[lead + (i - piece) * stride + c] -= 1
        border_rows = [i for i in range(piece, piece_end) if i < head_r or i >= H - tail_r]
        for i in border_rows:
            for c in range(W): count[lead + (i - piece) * stride + c] -= 1
        for at, n in count.items():
            r, c = divmod(at - lead, stride)
            i = piece + r
            inside = lead <= at < stage_end
            want = 1 if inside and middle_first <= i < middle_end and head_c <= c < W - tail_c else 0
            assert n == want, (trial, kvec, W, H, lead, piece, at, n, want)
        for r in range(rows):
            for c in range(W):
                at = lead + r * stride + c
                i = piece + r
                if middle_first <= i < middle_end and head_c <= c < W - tail_c:
                    assert count[at] == 1
print("ok")
