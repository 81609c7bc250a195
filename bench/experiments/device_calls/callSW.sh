#!/bin/bash
# A tree $W to land: built alone, the GPU suite until $SUITE_UNTIL s (330), then the padding sweep of its code
# (padding_sweep.sh, FUSEDLSE_COMMIT=$REV, cut off after $SWEEP_S s, 80). Carry .devrun on a fresh machine
# (make_trees.sh with TREES="$W"). docs/limits.md §123.
set -u
REV=${REV:?REV=<the commit of W>}; PAIR=$W; source .devrun/build_pair.sh
(SUITE_END=${SUITE_UNTIL:-330}; cd .devrun/trees/$W
 SUITE="tests bench/test_problems.py --ignore=tests/test_build.py" source $ROOT/.devrun/suite.sh)
source .devrun/padding_sweep.sh
grep -qiE "error:|\berror\b" $OUT/build_*.log || rm -f $OUT/build_*.log
echo "call $(( $(date +%s) - T0 ))s"
