#!/bin/bash
# Each kernel's own time (Nsight Compute, one kernel at a time) in the padded forwards of $PN (rNN:p ...) and their
# padding-0 forwards, tree .devrun/trees/$TREE built alone (sm_90): pad_ncu.py's two steps (docs/limits.md §117).
# Carry .devrun on a fresh machine. Files: the build's log, ncu's CSV, the table (pad_ncu.jsonl). $NCU_ARGS, if set,
# takes the place of the one metric (sections for occupancy and stalls, say; the table keeps gpu__time_duration's rows).
set -u
W=${TREE:?TREE=<the tree>}; ARCHS=${ARCHS:-9.0}
source .devrun/build_module.sh
PYTHONPATH=python:bench timeout ${PN_S:-240} ncu --clock-control none --cache-control none --profile-from-start off \
  ${NCU_ARGS:---metrics gpu__time_duration.sum} --csv \
  python3 $ROOT/.devrun/pad_ncu.py run ${PN:?PN=rNN:p ...} > $OUT/pad_ncu.csv 2> $OUT/pad_ncu.err
echo "ncu rc=$? $(( $(date +%s) - T0 ))s"
python3 $ROOT/.devrun/pad_ncu.py table $OUT/pad_ncu.csv > $OUT/pad_ncu.jsonl; echo "table rc=$?"
cut -c1-300 $OUT/pad_ncu.jsonl
