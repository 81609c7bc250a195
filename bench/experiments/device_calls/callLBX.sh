#!/bin/bash
# One call for a scarce device ($TOTAL s, default 585): build the tree $W (default s69) as make gpu-test builds it
# (or for $ARCHS alone, "9.0" say, test_build.py then left out: CI runs it), long_planes.py over MODES=rule,turns
# (one round), the whole GPU suite (or the tests -k $SUITE_K picks), then border_pass.py (callX.sh) in what is left.
W=${TREE:-s69}; TOTAL=${TOTAL:-585}
(source .devrun/build_module.sh
 MODES=rule,turns ROUNDS=1 PYTHONPATH=python:. timeout 60 python3 $ROOT/.devrun/long_planes.py $OUT/lp_$W.jsonl \
   2> $OUT/err_$W.log
 echo "long_planes rc=$? $(( $(date +%s) - T0 ))s"; tail -2 $OUT/err_$W.log
 python3 -c "import xdist" 2>/dev/null && N="-n 16" || N=""
 timeout $(( TOTAL - 25 - ($(date +%s) - T0) )) make gpu-test PYTHON=python3 ${ARCHS:+GPU_ARCHS=$ARCHS} \
   PYTEST_ARGS="$N -q -p no:cacheprovider ${ARCHS:+--ignore=tests/test_build.py} ${SUITE_K:+-k '$SUITE_K'}" \
   > $OUT/suite_$W.log 2>&1; echo "suite rc=$? $(( $(date +%s) - T0 ))s"
 tail -3 $OUT/suite_$W.log; grep -E "^(FAILED|ERROR)" $OUT/suite_$W.log | head -20
 LEFT=$(( TOTAL - ($(date +%s) - T0) ))
 if [ $LEFT -gt 60 ]; then (cd $ROOT && TREE=$W TOTAL=$LEFT bash .devrun/callX.sh); fi)
