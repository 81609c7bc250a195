#!/bin/bash
# The plane-lanes grid (docs/limits.md section 93), one tree (.devrun/trees/$TREE, s66 unless set) built for sm_90:
# grid_ab.py over every public-sweep problem at padding 0 and 1, and with pieces forced on r25, r57, r40, r16 (32
# lanes a plane); epilogues_ab.py on r25, r59, r16, r62; the sweep's rows r25, r59, r58, r26, r16, r62 against the
# shortcuts (bench/sweep.py) with the rule; bench/experiments/strided_planes.cu (the standalone schedules) again,
# under each load policy; rivals.py. About 500 s; 8 files back (the logs in one).
export CUDA_HOME=/usr/local/cuda TORCH_CUDA_ARCH_LIST=9.0
W=${TREE:-s66}; nvidia-smi --query-gpu=name --format=csv,noheader; T0=$(date +%s); ROOT=$(pwd)
for policy in 0 1 2; do  # the elements' loads: __ldcs, __ldg, ld.global.L1::evict_last
  nvcc -O3 -std=c++17 -arch=sm_90 -DLOAD_POLICY=$policy bench/experiments/strided_planes.cu \
    -o /tmp/strided_planes_$policy &
done
(cd .devrun/trees/$W && MAX_JOBS=14 python3 setup.py build_ext --inplace > $OUT/grid_ab_err.log 2>&1
 echo "build rc=$?")
wait; echo "built $(( $(date +%s) - T0 ))s"
for policy in 0 1 2; do /tmp/strided_planes_$policy >> $OUT/strided_planes.txt 2>&1; done
grep -E "^r|flat|a block a turn|128 x 4|pieces|span|group" $OUT/strided_planes.txt | head -60
(cd .devrun/trees/$W && PYTHONPATH=python:. PADS=0,1 timeout 240 python3 $ROOT/.devrun/grid_ab.py $OUT/grid_ab.jsonl \
   > /dev/null 2>> $OUT/grid_ab_err.log)
echo "grid_ab done $(( $(date +%s) - T0 ))s"
(cd .devrun/trees/$W && PYTHONPATH=python:. timeout 90 python3 $ROOT/.devrun/epilogues_ab.py $OUT/epilogues.jsonl \
   r25 r59 r16 r62 > /dev/null 2>> $OUT/grid_ab_err.log)
cat $OUT/epilogues.jsonl
(cd .devrun/trees/$W && PYTHONPATH=python:. MODES=turns,pieces2,pieces4,pieces8 timeout 90 python3 \
   $ROOT/.devrun/grid_ab.py $OUT/pieces_ab.jsonl r25 r57 r40 r16 > /dev/null 2>> $OUT/grid_ab_err.log)
echo "pieces done $(( $(date +%s) - T0 ))s"
python3 - $OUT/grid_ab.jsonl $OUT/pieces_ab.jsonl <<'P'
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for r in rows:
    if abs(r["ratio"]["persistent"] - 1) > 0.03: print(r)
lanes = [r["ratio"]["persistent"] for r in rows
         if r["padding"] == 0 and "plane_lanes" in (r["reader"], r["split_reader"])]
print(f"{len(rows)} rows; plane_lanes rows {len(lanes)}, geomean persistent / turns "
      f"{math.exp(sum(map(math.log, lanes)) / max(len(lanes), 1)):.4f}")
for l in open(sys.argv[2]): print(l.strip())
P
(cd .devrun/trees/$W && PYTHONPATH=python:. timeout 150 python3 bench/sweep.py --only r25,r59,r58,r26,r16,r62 \
   --providers cuda,torch_shortcut,torch_shortcut_compiled --out $OUT/rows > /dev/null 2>&1)
grep -E "^\| r[0-9]" $OUT/rows/sweep.md
timeout 60 python3 .devrun/rivals.py > /dev/null 2>&1
rm -f $OUT/rows/sweep.png; echo "all done $(( $(date +%s) - T0 ))s"
