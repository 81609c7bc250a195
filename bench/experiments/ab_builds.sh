#!/usr/bin/env bash
# Two builds on the same sweep rows, on one GPU machine, rounds interleaved (A, B, A, B): base against this tree.
#
#   bench/experiments/ab_builds.sh BASE_DIR ROWS [ROUNDS] [SCRATCH]     # from the repository's root
#
# BASE_DIR holds the base's sources, made where git knows the base (the device copy's git metadata can lag):
#   mkdir -p .devrun/base && git archive REV csrc python setup.py pyproject.toml | tar -x -C .devrun/base
# and carried to the machine (.devrun ignored, carry [".devrun"]). Both builds are in place for TORCH_CUDA_ARCH_LIST
# (default 9.0), side by side; each round runs bench/sweep.py --only ROWS (comma-separated sweep names) once per
# build, with PYTHONPATH at that build's python/, and bench/compare_sweeps.py prints each row's best floor_frac of A
# and B and their ratio. Logs and sweep.json files go to SCRATCH (default /tmp/ab_builds). SWEEP_PROVIDERS, if set,
# is passed as --providers (for example "cuda": the floors still run, the rivals not).
set -euo pipefail
base=$(cd "$1" && pwd)
rows=$2
rounds=${3:-2}
scratch=${4:-/tmp/ab_builds}
export FUSEDLSE_CUDA=1 CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-8}
mkdir -p "$scratch"
build() { (cd "$1" && python3 setup.py build_ext --inplace > "$scratch/build_$2.log" 2>&1) || {
  tail -20 "$scratch/build_$2.log"; exit 1; }; }
build "$base" a &
build "$PWD" b &
wait
for round in $(seq "$rounds"); do
  for side in a b; do
    root=$([ "$side" = a ] && echo "$base" || echo "$PWD")
    PYTHONPATH="$root/python:$PWD" FUSEDLSE_COMMIT="$side" python3 bench/sweep.py --only "$rows" \
      ${SWEEP_PROVIDERS:+--providers "$SWEEP_PROVIDERS"} \
      --out "$scratch/$side$round" > "$scratch/sweep_$side$round.log" 2>&1
  done
done
runs() { ls "$scratch"/"$1"*/sweep.json | paste -sd, -; }
PYTHONPATH="$PWD/python:$PWD" python3 bench/compare_sweeps.py "$(runs a)" "$(runs b)"
