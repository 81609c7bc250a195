#!/bin/bash
# One call for a scarce device ($TOTAL s, default 585): build the tree $W (default s69) as make gpu-test builds it
# (or for $ARCHS alone, "9.0" say, test_build.py then left out: CI runs it), long_planes.py over MODES=rule,turns
# (one round), the whole GPU suite (or the tests -k $SUITE_K picks), then border_pass.py (callX.sh) in what is left.
W=${TREE:-s69}; TOTAL=${TOTAL:-585}
(source .devrun/build_module.sh
 MODES=rule,turns ROUNDS=1 PYTHONPATH=python:. timeout 60 python3 $ROOT/.devrun/long_planes.py $OUT/lp_$W.jsonl \
   2> $OUT/err_$W.log
 echo "long_planes rc=$? $(( $(date +%s) - T0 ))s"; tail -2 $OUT/err_$W.log
 SUITE_END=$(( TOTAL - 25 )) source $ROOT/.devrun/suite.sh
 LEFT=$(( TOTAL - ($(date +%s) - T0) ))
 if [ $LEFT -gt 60 ]; then (cd $ROOT && TREE=$W TOTAL=$LEFT bash .devrun/callX.sh); fi)
