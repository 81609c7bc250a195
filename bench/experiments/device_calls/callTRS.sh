#!/bin/bash
# callTR.sh (tree $B against $A on the tap reader's pairs, then the GPU suite on $B until $SUITE_END s), then the
# padding sweep of $B (bench/padding_groups.py, FUSEDLSE_COMMIT=$REV, cut off after $SWEEP_S s, 75): a candidate's A/B,
# suite and sweep in one call. Carry .devrun on a fresh machine (make_trees.sh with TREES="$A $B"). docs/limits.md §120.
set -u
REV=${REV:?REV=<B's commit>}; T0_CALL=$(date +%s)
bash .devrun/callTR.sh
cd .devrun/trees/$B && FUSEDLSE_COMMIT=$REV PYTHONPATH=python:. timeout ${SWEEP_S:-75} python3 bench/padding_groups.py \
  --every 1 --variants p1,p2,p3 --stem padding_sweep --out $OUT > /tmp/padding_sweep.log 2>&1
echo "padding sweep rc=$? $(( $(date +%s) - T0_CALL ))s"; tail -3 /tmp/padding_sweep.log
