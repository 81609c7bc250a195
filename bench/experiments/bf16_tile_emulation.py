"""s82's bfloat16 tensor-core tile (bench/experiments/s82_next.mbox, kernels/gemm_lse.cuh bf16_mma_lse_tiles) on the
CPU, index by index: PieceStager's staging of a step's pairs and slots, each lane's fragment loads, the m16n8k16
fragment layouts of the PTX ISA (A rows g, g + 8 at columns 2t, 2t + 1 and 2t + 8, 2t + 9; B rows 2t, 2t + 1 and
2t + 8, 2t + 9 at column g; C rows g, g + 8 at columns 2t, 2t + 1), and the epilogue's rows and columns. Checks that
every output of a tile is written once and equals the pieces' GEMM (high x high + low x high + high x low) for
partial channel steps, rows and columns. Written where no GPU was left (docs/limits.md section 106).
python bench/experiments/bf16_tile_emulation.py"""
import numpy as np
rng = np.random.default_rng(0)
kRows, kCols, kDepth = 128, 64, 16
kPairs = kDepth // 2
kWarpsM, kWarpsN, kWarpRows, kWarpCols = 4, 2, 32, 32
kFrags, kTiles = 2, 4
kSumLoads = kRows * kPairs // 256; kSumRowsApart = 256 // kPairs
kWeightLoads = kPairs * kCols // 256; kWeightPairsApart = 256 // kCols

def bf16_trunc(x):
    return (x.astype(np.float32).view(np.uint32) & 0xffff0000).view(np.float32)
def bf16_rn(x):
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7fff + ((u >> 16) & 1)) & 0xffff0000).astype(np.uint32)
    return r.view(np.float32)
def pieces(v, left):
    hi = bf16_trunc(v); lo = bf16_rn((v - hi).astype(np.float32))
    return (hi, lo, hi) if left else (hi, hi, lo)

def run(batch, channels, c_out, row0=0, n0=0):
    sums = rng.standard_normal((batch, channels)).astype(np.float32) * 3
    wsum = rng.standard_normal((channels, c_out)).astype(np.float32)
    acc = {}  # (warp, lane, f, n) -> 4 floats
    steps = -(-channels // kDepth)
    for step in range(steps):
        k0 = step * kDepth
        # staging: staged[slot][pair][row] of (v0, v1) pieces, as values (each word = pair of bf16 values)
        ss = np.zeros((3, kPairs, kRows, 2), np.float32); sw = np.zeros((3, kPairs, kCols, 2), np.float32)
        for tid in range(256):
            sum_pair, sum_row = tid % kPairs, tid // kPairs
            rows_left = batch - row0 - sum_row
            for l in range(kSumLoads):
                ch = k0 + 2 * sum_pair; row = sum_row + l * kSumRowsApart
                ok = l * kSumRowsApart < rows_left
                v0 = sums[row0 + row, ch] if ok and ch < channels else 0.
                v1 = sums[row0 + row, ch + 1] if ok and ch + 1 < channels else 0.
                p0, p1 = pieces(np.float32(v0), True), pieces(np.float32(v1), True)
                for s in range(3): ss[s, sum_pair, row] = (p0[s], p1[s])
            wsum_col, wsum_pair = tid % kCols, tid // kCols
            for l in range(kWeightLoads):
                first = k0 + 2 * (wsum_pair + l * kWeightPairsApart); pair = wsum_pair + l * kWeightPairsApart
                col_ok = n0 + wsum_col < c_out
                v0 = wsum[first, n0 + wsum_col] if col_ok and first < channels else 0.
                v1 = wsum[first + 1, n0 + wsum_col] if col_ok and first + 1 < channels else 0.
                p0, p1 = pieces(np.float32(v0), False), pieces(np.float32(v1), False)
                for s in range(3): sw[s, pair, wsum_col] = (p0[s], p1[s])
        for warp in range(8):
            warp_row = warp // kWarpsN * kWarpRows; warp_col = warp % kWarpsN * kWarpCols
            for slot in range(3):
                # registers per lane
                A = {}; B = {}
                for lane in range(32):
                    g, t = lane // 4, lane % 4
                    pair = 0 // 2 + t
                    for f in range(kFrags):
                        A[(lane, f)] = [ss[slot, pair + 4 * (r // 2), warp_row + 16 * f + g + 8 * (r % 2)] for r in range(4)]
                    for n in range(kTiles):
                        col = warp_col + 8 * n + g
                        B[(lane, n)] = [sw[slot, pair, col], sw[slot, pair + 4, col]]
                for f in range(kFrags):
                    for n in range(kTiles):
                        # assemble PTX matrices from lanes' registers
                        Am = np.zeros((16, 16), np.float64); Bm = np.zeros((16, 8), np.float64)
                        for lane in range(32):
                            g, t = lane // 4, lane % 4
                            a = A[(lane, f)]
                            Am[g, 2*t], Am[g, 2*t+1] = a[0]
                            Am[g+8, 2*t], Am[g+8, 2*t+1] = a[1]
                            Am[g, 2*t+8], Am[g, 2*t+9] = a[2]
                            Am[g+8, 2*t+8], Am[g+8, 2*t+9] = a[3]
                            b = B[(lane, n)]
                            Bm[2*t, g], Bm[2*t+1, g] = b[0]
                            Bm[2*t+8, g], Bm[2*t+9, g] = b[1]
                        D = Am @ Bm
                        for lane in range(32):
                            g, t = lane // 4, lane % 4
                            c = acc.setdefault((warp, lane, f, n), np.zeros(4))
                            c += [D[g, 2*t], D[g, 2*t+1], D[g+8, 2*t], D[g+8, 2*t+1]]
    # epilogue mapping: value (f, half, j): acc[f][j/2][2*half + j%2] at row warp_row+16f+8half+g, col warp_col+j/2*8+2t+j%2
    out = np.full((kRows, kCols), np.nan)
    for warp in range(8):
        warp_row = warp // kWarpsN * kWarpRows; warp_col = warp % kWarpsN * kWarpCols
        for lane in range(32):
            g, t = lane // 4, lane % 4
            for f in range(kFrags):
                for half in range(2):
                    for j in range(2 * kTiles):
                        row = warp_row + 16 * f + 8 * half + g; col = warp_col + j // 2 * 8 + 2 * t + j % 2
                        assert np.isnan(out[row, col]), "written twice"
                        out[row, col] = acc[(warp, lane, f, j // 2)][2 * half + j % 2]
    assert not np.isnan(out).any(), "not every output written"
    # reference: pieces GEMM
    S = sums[row0:row0 + kRows]; Sp = np.zeros((kRows, channels), np.float32); Sp[:S.shape[0]] = S
    W = np.zeros((channels, kCols), np.float32); w = wsum[:, n0:n0 + kCols]; W[:, :w.shape[1]] = w
    sh, sl, _ = pieces(Sp, True); wh, _, wl = pieces(W, False)
    ref = sh.astype(np.float64) @ wh + sl.astype(np.float64) @ wh + sh.astype(np.float64) @ wl
    exact = Sp.astype(np.float64) @ W
    err = np.abs(out - ref).max(); scale = (np.abs(Sp).astype(np.float64) @ np.abs(W)).max()
    print(batch, channels, c_out, "max |emu - pieces ref|", err, " vs exact / |a||b|", np.abs(out - exact).max() / scale)
    assert err < 1e-9 * scale

run(128, 37, 64)
run(100, 16, 50)
run(200, 33, 64, row0=72)
