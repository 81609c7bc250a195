#!/bin/bash
# border_pass.py (docs/limits.md section 98) in the tree $TREE (default s69) as callLB.sh built it: the standalone
# border pass against padding 0's work, torch's flat sum and fusedlse's forward at padding 0-3, and its pipeline.
W=${TREE:-s69}; ROOT=$(pwd); T0=$(date +%s)
export CUDA_HOME=/usr/local/cuda MAX_JOBS=16 TORCH_CUDA_ARCH_LIST=9.0
nvidia-smi --query-gpu=name --format=csv,noheader
cd .devrun/trees/$W
PYTHONPATH=python:. timeout ${SECONDS_LEFT:-240} python3 $ROOT/.devrun/border_pass.py $OUT/border.jsonl \
  > $OUT/border.log 2>&1; echo "border rc=$? $(( $(date +%s) - T0 ))s"
grep -v "^W1\|Warning" $OUT/border.log | tail -30 | cut -c1-600
