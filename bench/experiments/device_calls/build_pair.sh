# Sourced by the A/B call scripts (callM2.sh, callG3.sh): prints the GPU, sets T0 (the call's start), ROOT (the
# repository root) and ARCHS (default 9.0), and builds the trees named in $PAIR under .devrun/trees in parallel (8
# jobs each), printing each one's status and any spill or error line of their logs ($OUT/build_<tree>.log).
export CUDA_HOME=/usr/local/cuda
nvidia-smi --query-gpu=name --format=csv,noheader; T0=$(date +%s); ROOT=$(pwd); ARCHS=${ARCHS:-9.0}
for W in $PAIR; do
  (cd .devrun/trees/$W && MAX_JOBS=8 make module PYTHON=python3 GPU_ARCHS=$ARCHS > $OUT/build_$W.log 2>&1
   echo "build $W rc=$? $(( $(date +%s) - T0 ))s") &
done; wait
grep -iE "spill|error" $OUT/build_*.log | grep -v "0 bytes spill" | head -5
