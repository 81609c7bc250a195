#!/bin/bash
# Build the trees (sm_90) in parallel; the lean padding sweep of each (forward times at padding 0-3, one process a
# tree); pick the candidate with the fewest rows slower than main (.devrun/winner); per-kernel times of main and the
# winner on the rows in question; where time is left, host.py's split of small rows' time (host, GPU, L2-flushed).
export CUDA_HOME=/usr/local/cuda TORCH_CUDA_ARCH_LIST=9.0
nvidia-smi --query-gpu=name --format=csv,noheader
ROOT=$(pwd); T0=$(date +%s)
TREES="${TREES:-main s60 s63}"
for t in $TREES; do
  (cd .devrun/trees/$t && MAX_JOBS=5 python3 setup.py build_ext --inplace > $OUT/build_$t.log 2>&1
   echo "$t build rc=$? $(( $(date +%s) - T0 ))s") &
done
wait
for t in $TREES; do
  (cd .devrun/trees/$t && PYTHONPATH=python:. PADS=${PADS:-1,2,3} REP=${REP:-40} timeout 100 \
     python3 $ROOT/.devrun/lean.py $t $OUT/lean.jsonl 2>> $OUT/lean_err.log)
  echo "lean $t done $(( $(date +%s) - T0 ))s"
done
python3 .devrun/cmp_lean.py $OUT/lean.jsonl .devrun/winner | tee $OUT/cmp_lean.txt
echo "winner $(cat .devrun/winner)"; cp .devrun/winner $OUT/
W=$(cat .devrun/winner)
SPECS="r33:3 r33:1 r41:3 r46:3 r51:1 r16:3 r37:3 r21:1"
for t in main $W; do
  [ $(( $(date +%s) - T0 )) -gt 420 ] && break
  (cd .devrun/trees/$t && PYTHONPATH=python:. timeout 60 python3 $ROOT/.devrun/kprof.py $t $SPECS \
     >> $OUT/kprof.jsonl 2>> $OUT/kprof_err.log)
  echo "kprof $t done $(( $(date +%s) - T0 ))s"
done
for t in main $W; do
  [ $(( $(date +%s) - T0 )) -gt 460 ] && break
  (cd .devrun/trees/$t && PYTHONPATH=python:. timeout 30 python3 $ROOT/.devrun/host.py $t r51:1 r51:0 r19:3 r02:1 \
     >> $OUT/host.jsonl 2>> $OUT/host_err.log)
done
echo "all done $(( $(date +%s) - T0 ))s"; tail -n 3 $OUT/lean_err.log $OUT/kprof_err.log $OUT/host_err.log
