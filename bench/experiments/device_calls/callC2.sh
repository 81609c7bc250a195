#!/bin/bash
# On a warm machine after callE2.sh built .devrun/trees/$TREE (no carry; docs/limits.md section 114): the GPU suite
# on $TREE (until 330 s after the start), bench/padding_groups.py's padding sweep (FUSEDLSE_COMMIT=$REV, cut off after
# $SWEEP_S s, 130), then kprof.py's per-kernel times of $KPROF (padded sweep rows, rNN:p).
set -u
W=${TREE:?TREE=<the tree>}; REV=${REV:?REV=<its commit>}; ROOT=$(pwd)
nvidia-smi --query-gpu=name --format=csv,noheader; T0=$(date +%s)
cd .devrun/trees/$W
SUITE="tests bench/test_problems.py --ignore=tests/test_build.py" SUITE_END=${SUITE_END:-330} source $ROOT/.devrun/suite.sh
FUSEDLSE_COMMIT=$REV PYTHONPATH=python:. timeout ${SWEEP_S:-130} python3 bench/padding_groups.py --every 1 \
  --variants p1,p2,p3 --stem padding_sweep --out $OUT > $OUT/padding_sweep.log 2>&1
echo "padding sweep rc=$? $(( $(date +%s) - T0 ))s"; tail -3 $OUT/padding_sweep.log
PYTHONPATH=python:. timeout 60 python3 $ROOT/.devrun/kprof.py $W ${KPROF:-r16:1} > $OUT/kprof.jsonl 2> $OUT/kprof.err
echo "kprof rc=$? $(( $(date +%s) - T0 ))s"
