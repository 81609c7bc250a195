#!/bin/bash
# callPN.sh's kernel times of $PN on tree $TREE, then Nsight Compute's detailed sections for the first launch of the
# kernels matching $NCU_K in the padded forward of $PN2 (one rNN:p): where a combine's time goes (docs/limits.md §125).
set -u
source .devrun/callPN.sh
cd $ROOT/.devrun/trees/$W
PYTHONPATH=python:bench timeout ${PN2_S:-150} ncu --clock-control none --cache-control none --profile-from-start off \
  --set detailed -k "regex:${NCU_K:?}" --launch-count ${NCU_N:-1} --csv --page details \
  python3 $ROOT/.devrun/pad_ncu.py run ${PN2:?} > $OUT/ncu_detail.csv 2> $OUT/ncu_detail.err
echo "ncu detail rc=$? $(( $(date +%s) - T0 ))s"; tail -2 $OUT/ncu_detail.err | cut -c1-300
