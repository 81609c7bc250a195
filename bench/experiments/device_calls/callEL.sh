#!/bin/bash
# On a warm machine after callE2.sh built .devrun/trees/$TREE (no carry): $AB.py ($AB_S seconds, 190 unless set, cut
# off $AB_GRACE s after, 60; AB=element_ab, s87's GEMM over x's elements, §110, or AB=keep_ab, s91's keep GEMM, §112:
# forced off, on and by the rule on every sweep pair at padding 1-3 that can take it; or AB=combine_lanes, s95's lane
# counts, §115), then bench/padding_groups.py's padding sweep (p1-p3 on every problem; cut off after $SWEEP_S s, 200;
# 0 skips it) with FUSEDLSE_COMMIT=$REV. Writes
# $OUT/$AB.jsonl, $OUT/padding_sweep.{json,md} and their logs.
set -u
W=${TREE:?TREE=<the tree>}; REV=${REV:?REV=<its commit>}; AB=${AB:-element_ab}; SWEEP_S=${SWEEP_S:-200}
nvidia-smi --query-gpu=name --format=csv,noheader; T0=$(date +%s)
cd .devrun/trees/$W
PYTHONPATH=python:bench timeout $(( ${AB_S:-190} + ${AB_GRACE:-60} )) python3 ../../$AB.py $OUT/$AB.jsonl \
  ${AB_S:-190} > $OUT/$AB.log 2>&1; echo "$AB rc=$? $(( $(date +%s) - T0 ))s"
[ "$SWEEP_S" -gt 0 ] || exit 0
FUSEDLSE_COMMIT=$REV PYTHONPATH=python:. timeout $SWEEP_S python3 bench/padding_groups.py --every 1 \
  --variants p1,p2,p3 --stem padding_sweep --out $OUT > $OUT/padding_sweep.log 2>&1
echo "padding sweep rc=$? $(( $(date +%s) - T0 ))s"; tail -3 $OUT/padding_sweep.log
