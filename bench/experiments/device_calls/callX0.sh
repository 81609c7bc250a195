#!/bin/bash
# border_pass.py alone, with no build of fusedlse ($TOTAL s, default 160): the pass against the same kernel summing
# whole planes (padding 0's work), torch's flat sum and x.sum((2, 3)). Run in the repository root.
export CUDA_HOME=/usr/local/cuda MAX_JOBS=16 TORCH_CUDA_ARCH_LIST=9.0; T0=$(date +%s)
nvidia-smi --query-gpu=name --format=csv,noheader
PYTHONPATH=python:. timeout ${TOTAL:-160} python3 .devrun/border_pass.py $OUT/border.jsonl > $OUT/border.log 2>&1
echo "border rc=$? $(( $(date +%s) - T0 ))s"; grep -v "^W1\|Warning" $OUT/border.log | tail -14 | cut -c1-700
