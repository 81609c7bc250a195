#!/bin/bash
# s72 (docs/limits.md section 101) in one call: main's and s72's trees (make_trees.sh, TREES="main s72") built for
# $ARCHS (default 9.0) in parallel; groups_ab.py in each build, the processes alternating twice (callG2.sh's A/B,
# without its build); then the whole GPU suite on s72 (suite.sh) in what is left of $TOTAL s.
export CUDA_HOME=/usr/local/cuda
nvidia-smi --query-gpu=name --format=csv,noheader; T0=$(date +%s); ROOT=$(pwd); ARCHS=${ARCHS:-9.0}
for W in main s72; do
  (cd .devrun/trees/$W && MAX_JOBS=8 make module PYTHON=python3 GPU_ARCHS=$ARCHS > $OUT/build_$W.log 2>&1
   echo "build $W rc=$? $(( $(date +%s) - T0 ))s") &
done; wait
grep -iE "spill|error" $OUT/build_*.log | grep -v "0 bytes spill" | head -5
sed -n '/^for round/,$p' .devrun/callG2.sh > $OUT/ab.sh; (source $OUT/ab.sh)
W=s72; cd $ROOT/.devrun/trees/$W; SUITE_END=$(( ${TOTAL:-480} - 15 )) source $ROOT/.devrun/suite.sh
