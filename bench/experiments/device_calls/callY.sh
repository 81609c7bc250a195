#!/bin/bash
# One tree $W (default s84) alone (docs/limits.md section 108): built for $ARCHS (9.0), the GPU suite until $SUITE_END s
# (suite.sh, default 430), then, unless SCAN_S=0, bf16_tile_scan.py ($COUNT problems, $SCAN_S s): the out-of-sample
# check of the bfloat16 tile's cost count that callW2.sh was to run. The tree stays built for callS.sh on the same warm
# machine.
W=${W:-s84}; PAIR="$W"; source .devrun/build_pair.sh
SUITE_END=${SUITE_END:-430}
(cd $ROOT/.devrun/trees/$W && SUITE="tests bench/test_problems.py --ignore=tests/test_build.py" \
  source $ROOT/.devrun/suite.sh)
[ "${SCAN_S:-110}" -gt 0 ] || exit 0  # the suite alone
(cd $ROOT/.devrun/trees/$W && ROUNDS=2 PYTHONPATH=python:. timeout ${SCAN_S:-110} \
  python3 $ROOT/.devrun/bf16_tile_scan.py \
  $OUT/scan_$W.jsonl ${COUNT:-40} 20261207 > /dev/null 2>> $OUT/err.log); echo "scan rc=$? $(( $(date +%s) - T0 ))s"
tail -3 $OUT/err.log 2>/dev/null
python3 -c "
import json
for l in open('$OUT/scan_$W.jsonl'):
    r = json.loads(l)
    print(r['name'], r['shape'], r['c_out'], r['dtype'], r['tiled_lse'], r['cublas_lse'], r['planned'], r['planned_us'],
          r['shortcut_us'])
"
grep -qiE "error:|\berror\b" $OUT/build_*.log || rm -f $OUT/build_*.log
