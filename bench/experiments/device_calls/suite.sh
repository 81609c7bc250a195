# Sourced by the call scripts inside a tree (.devrun/trees/$W, from T0 = the call's start): the GPU suite into
# $OUT/suite_$W.log, then its summary and failures. make gpu-test as the Makefile runs it (for $ARCHS alone where set,
# test_build.py then left to CI; -k $SUITE_K where set), or with SUITE set pytest over those arguments alone (the
# module built already), importing the tree's own module (PYTHONPATH=python:.: two trees built in one call each
# install themselves in turn, and the installed one is the last built; docs/limits.md §102); -n 16 where
# pytest-xdist is there; cut off $SUITE_END s after T0 where that is set.
python3 -c "import xdist" 2>/dev/null && N="-n 16" || N=""
LIMIT=${SUITE_END:+timeout $(( SUITE_END - ($(date +%s) - T0) ))}
if [ -n "${SUITE:-}" ]; then
  PYTHONPATH=python:. $LIMIT python3 -m pytest $SUITE $N -q -p no:cacheprovider > $OUT/suite_$W.log 2>&1
else
  $LIMIT make gpu-test PYTHON=python3 ${ARCHS:+GPU_ARCHS=$ARCHS} \
    PYTEST_ARGS="$N -q -p no:cacheprovider ${ARCHS:+--ignore=tests/test_build.py} ${SUITE_K:+-k '$SUITE_K'}" \
    > $OUT/suite_$W.log 2>&1
fi
echo "suite rc=$? $(( $(date +%s) - T0 ))s"; tail -3 $OUT/suite_$W.log
grep -E "^(FAILED|ERROR)" $OUT/suite_$W.log | head -30
