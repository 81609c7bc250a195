#!/bin/bash
# fuzz_cuda.py (docs/limits.md section 97) in .devrun/trees/$TREE as callL.sh or callB.sh built it (run right after
# them, no carry): the CUDA forward over random shapes, layouts, dtypes, settings and biases against float64 truths,
# for $FUZZ_SECONDS (default 120) from seed $SEED (default 0). Failures in $OUT/fuzz_$TREE.jsonl; the log ends with the
# count of cases and the plans they took.
W=${TREE:?TREE=<the tree>}; S=${FUZZ_SECONDS:-120}; ROOT=$(pwd)
nvidia-smi --query-gpu=name --format=csv,noheader; T0=$(date +%s)
cd .devrun/trees/$W
PYTHONPATH=python:.:tests timeout $((S + 120)) python3 $ROOT/.devrun/fuzz_cuda.py $OUT/fuzz_$W.jsonl $S ${SEED:-0} \
  > $OUT/fuzz_$W.log 2>&1; echo "fuzz rc=$? $(( $(date +%s) - T0 ))s"
grep -c "^FAIL" $OUT/fuzz_$W.log; tail -40 $OUT/fuzz_$W.log | cut -c1-300
