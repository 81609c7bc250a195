#!/bin/bash
# One candidate tree $W: built alone, staged_lse_ab.py there ($LSE_S s, 70: s111's kernel forced on, off and the
# rule in one build, each forward against the float64 shortcut), then the GPU suite until $SUITE_UNTIL s (480), or
# pytest over $SUITE_ARGS alone where set.
# Carry .devrun on a fresh machine (make_trees.sh with TREES="$W"). docs/limits.md §122.
set -u
PAIR=$W; source .devrun/build_pair.sh
(cd .devrun/trees/$W && PYTHONPATH=python:bench timeout $(( ${LSE_S:-70} + 30 )) python3 \
  $ROOT/.devrun/staged_lse_ab.py $OUT/lse_$W.jsonl ${LSE_S:-70} > $OUT/lse_$W.log 2>&1
 echo "staged_lse_ab rc=$? $(( $(date +%s) - T0 ))s")
tail -25 $OUT/lse_$W.log
(SUITE_END=${SUITE_UNTIL:-480}; cd .devrun/trees/$W
 SUITE="${SUITE_ARGS:-tests bench/test_problems.py --ignore=tests/test_build.py}" source $ROOT/.devrun/suite.sh)
grep -qiE "error:|\berror\b" $OUT/build_*.log || rm -f $OUT/build_*.log
echo "call $(( $(date +%s) - T0 ))s"
