#!/bin/bash
# border_pass.py (docs/limits.md section 98) for $TOTAL s (160 unless set). With TREE, in .devrun/trees/$TREE as a
# build left it (callL.sh, callLBX.sh, callBX.sh): fusedlse's forward at padding 0-3 and the pipeline included. With
# no TREE, in the repository root with no build: the pass against padding 0's work and torch's sums alone (the
# shortest call). Run in the repository root.
export CUDA_HOME=/usr/local/cuda MAX_JOBS=16 TORCH_CUDA_ARCH_LIST=9.0; T0=$(date +%s); ROOT=$(pwd)
nvidia-smi --query-gpu=name --format=csv,noheader
if [ -n "${TREE:-}" ]; then cd .devrun/trees/$TREE; fi
PYTHONPATH=python:. timeout ${TOTAL:-160} python3 $ROOT/.devrun/border_pass.py $OUT/border.jsonl > $OUT/border.log 2>&1
echo "border rc=$? $(( $(date +%s) - T0 ))s"; grep -v "^W1\|Warning" $OUT/border.log | tail -14 | cut -c1-700
