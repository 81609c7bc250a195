# Sourced by the call scripts that build one tree as make gpu-test builds it ("8.9;9.0+PTX"), with W the tree's name
# under .devrun/trees: prints the GPU, sets T0 (the call's start) and ROOT (the repository root), enters the tree and
# runs make module (for the archs $ARCHS where set, else the Makefile's), printing its status and any spill or error
# line of its log ($OUT/build_$W.log).
export CUDA_HOME=/usr/local/cuda MAX_JOBS=16
nvidia-smi --query-gpu=name --format=csv,noheader; T0=$(date +%s); ROOT=$(pwd)
cd .devrun/trees/$W
make module PYTHON=python3 ${ARCHS:+GPU_ARCHS=$ARCHS} > $OUT/build_$W.log 2>&1
echo "build rc=$? $(( $(date +%s) - T0 ))s"
grep -iE "spill|error" $OUT/build_$W.log | grep -v "0 bytes spill" | head -5
