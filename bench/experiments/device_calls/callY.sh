#!/bin/bash
# One tree $W (default s84) alone (docs/limits.md section 108): built for $ARCHS (9.0), the GPU suite until $SUITE_END s
# (suite.sh, default 430), then, unless SCAN_S=0, bf16_tile_scan.py ($COUNT problems of seed $SEED, $SCAN_S s): the
# out-of-sample check of the bfloat16 tile's cost count that callW2.sh was to run. The tree stays built for callS.sh on
# the same warm machine.
W=${W:-s84}; PAIR="$W"; source .devrun/build_pair.sh
SUITE_END=${SUITE_END:-430}
(cd $ROOT/.devrun/trees/$W && SUITE="tests bench/test_problems.py --ignore=tests/test_build.py" \
  source $ROOT/.devrun/suite.sh)
grep -qiE "error:|\berror\b" $OUT/build_*.log || rm -f $OUT/build_*.log
[ "${SCAN_S:-110}" -gt 0 ] || exit 0  # the suite alone
(cd $ROOT/.devrun/trees/$W && ROUNDS=2 PYTHONPATH=python:. timeout ${SCAN_S:-110} python3 \
  $ROOT/.devrun/bf16_tile_scan.py $OUT/scan_$W.jsonl ${COUNT:-40} ${SEED:-20261207} 2>> $OUT/err.log)
echo "scan rc=$? $(( $(date +%s) - T0 ))s"; tail -3 $OUT/err.log 2>/dev/null
