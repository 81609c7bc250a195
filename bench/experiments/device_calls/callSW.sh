#!/bin/bash
# A tree $W to land: built alone, the GPU suite until $SUITE_UNTIL s (330), then the padding sweep of its code
# (bench/padding_groups.py, FUSEDLSE_COMMIT=$REV, cut off after $SWEEP_S s, 80). Carry .devrun on a fresh machine
# (make_trees.sh with TREES="$W"). docs/limits.md §123.
set -u
REV=${REV:?REV=<the commit of W>}; PAIR=$W; source .devrun/build_pair.sh
(SUITE_END=${SUITE_UNTIL:-330}; cd .devrun/trees/$W
 SUITE="tests bench/test_problems.py --ignore=tests/test_build.py" source $ROOT/.devrun/suite.sh)
(cd .devrun/trees/$W && FUSEDLSE_COMMIT=$REV PYTHONPATH=python:. timeout ${SWEEP_S:-80} python3 \
  bench/padding_groups.py --every 1 --variants p1,p2,p3 --stem padding_sweep --out $OUT > $OUT/padding_sweep.log 2>&1
 echo "padding sweep rc=$? $(( $(date +%s) - T0 ))s"; tail -8 $OUT/padding_sweep.log)
grep -qiE "error:|\berror\b" $OUT/build_*.log || rm -f $OUT/build_*.log
echo "call $(( $(date +%s) - T0 ))s"
