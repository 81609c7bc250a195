#!/bin/bash
# The whole GPU suite ("8.9;9.0+PTX" build, make gpu-test) in .devrun/trees/$TREE (main unless set).
export CUDA_HOME=/usr/local/cuda
W=${TREE:-main}; echo "tree $W"; nvidia-smi --query-gpu=name --format=csv,noheader
cd .devrun/trees/$W && T0=$(date +%s)
python3 -c "import xdist" 2>/dev/null && N="-n 16" || N=""
make gpu-test PYTHON=python3 PYTEST_ARGS="$N -q -p no:cacheprovider" > $OUT/suite_$W.log 2>&1; echo "suite rc=$?"
echo "elapsed $(( $(date +%s) - T0 ))s"
tail -3 $OUT/suite_$W.log; grep -E "^(FAILED|ERROR)" $OUT/suite_$W.log | head -30
