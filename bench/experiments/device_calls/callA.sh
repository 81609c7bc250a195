#!/bin/bash
# Build the trees (sm_90) in parallel; the lean padding sweep of each twice, alternating (forward times at padding
# 0-3, one process a tree); cmp_lean (the candidate with the fewest rows slower than main in .devrun/winner);
# per-kernel times of the rows in question; for r12 at padding 1 (1.07x main's in s63 and s64, docs/limits.md §91;
# level in s65, §92) the SASS of tap_grid_kernel<float, 1, 0> and Nsight Compute's per-instruction samples, each
# tree's.
export CUDA_HOME=/usr/local/cuda TORCH_CUDA_ARCH_LIST=9.0
nvidia-smi --query-gpu=name --format=csv,noheader
ROOT=$(pwd); T0=$(date +%s)
# Every tree make_trees.sh made, main first: cmp_lean compares the others with the first.
TREES="${TREES:-$(ls .devrun/trees | grep -x main; ls .devrun/trees | grep -vx main)}"
TREES=$(echo $TREES)
for t in $TREES; do
  (cd .devrun/trees/$t && MAX_JOBS=5 python3 setup.py build_ext --inplace > $OUT/build_$t.log 2>&1
   echo "$t build rc=$? $(( $(date +%s) - T0 ))s") &
done
wait
for rep in 1 2; do
  for t in $TREES; do
    (cd .devrun/trees/$t && PYTHONPATH=python:. PADS=${PADS:-1,2,3} REP=${REP:-40} timeout 100 \
       python3 $ROOT/.devrun/lean.py $t $OUT/lean.jsonl 2>> $OUT/lean_err.log)
  done
  echo "lean rep $rep done $(( $(date +%s) - T0 ))s"
done
python3 .devrun/cmp_lean.py $OUT/lean.jsonl .devrun/winner | tee $OUT/cmp_lean.txt
echo "winner $(cat .devrun/winner)"; cp .devrun/winner $OUT/
for t in $TREES; do
  (cd .devrun/trees/$t && PYTHONPATH=python:. timeout 60 python3 $ROOT/.devrun/kprof.py $t r12:1 r12:3 r33:1 r33:3 \
     r61:3 >> $OUT/kprof.jsonl 2>> $OUT/kprof_err.log)
  so=$(find .devrun/trees/$t -name "_C*.so" | head -1)
  cuobjdump -sass $so | awk '/Function : / { p = /tap_grid_kernelIfLi1ELi0E/ } p' > $OUT/sass_f1_$t.txt
done
echo "kprof, sass done $(( $(date +%s) - T0 ))s"
for t in $TREES; do
  [ $(( $(date +%s) - T0 )) -gt 420 ] && break
  (cd .devrun/trees/$t && PYTHONPATH=python:. timeout 90 ncu --clock-control none -k regex:tap_grid -c 1 \
     --section SpeedOfLight --section WarpStateStats --section SourceCounters --page source --print-source sass \
     --csv python3 $ROOT/.devrun/one.py r12:1 2> $OUT/ncu_err_$t.log | gzip > $OUT/ncu_src_$t.csv.gz)
  echo "ncu $t done $(( $(date +%s) - T0 ))s"
done
echo "all done $(( $(date +%s) - T0 ))s"; tail -n 3 $OUT/lean_err.log $OUT/kprof_err.log $OUT/ncu_err_*.log
# A call returns at most 8 files: the logs, SASS and samples in one archive.
(cd $OUT && tar czf rest.tgz --remove-files $(ls | grep -vxE 'cmp_lean.txt|lean.jsonl|kprof.jsonl'))
