#!/bin/bash
# s91 (docs/limits.md §112) on a warm machine after callE2.sh built .devrun/trees/$TREE (no carry): keep_ab.py ($AB_S
# seconds, 150 unless set; the keep GEMM forced off, on and by the rule on every 16-bit sweep problem at padding 1-3
# that can take it), then bench/padding_groups.py's padding sweep (p1-p3 on every problem) with FUSEDLSE_COMMIT=$REV.
set -u
W=${TREE:?TREE=<the tree>}; REV=${REV:?REV=<its commit>}
nvidia-smi --query-gpu=name --format=csv,noheader; T0=$(date +%s)
cd .devrun/trees/$W
PYTHONPATH=python:bench timeout $(( ${AB_S:-150} + 15 )) python3 ../../keep_ab.py $OUT/keep_ab.jsonl \
  ${AB_S:-150} > $OUT/keep_ab.log 2>&1; echo "keep_ab rc=$? $(( $(date +%s) - T0 ))s"
FUSEDLSE_COMMIT=$REV PYTHONPATH=python:. timeout $(( ${SWEEP_S:-200} )) python3 bench/padding_groups.py --every 1 --variants p1,p2,p3 \
  --stem padding_sweep --out $OUT > $OUT/padding_sweep.log 2>&1; echo "padding sweep rc=$? $(( $(date +%s) - T0 ))s"
tail -3 $OUT/padding_sweep.log
