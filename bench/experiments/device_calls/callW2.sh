#!/bin/bash
# main's final code alone (docs/limits.md section 107): built, bf16_tile_scan.py ($COUNT problems, $SCAN_S s), then the
# tiled epilogue's tests ($TEST_K) for every dtype, $TEST_S s.
PAIR="main"; source .devrun/build_pair.sh
(cd $ROOT/.devrun/trees/main && ROUNDS=2 PYTHONPATH=python:. timeout ${SCAN_S:-100} python3 $ROOT/.devrun/bf16_tile_scan.py \
  $OUT/scan_main.jsonl ${COUNT:-40} 20261207 2>> $OUT/err.log); echo "scan rc=$? $(( $(date +%s) - T0 ))s"
(cd $ROOT/.devrun/trees/main && PYTHONPATH=python:. timeout ${TEST_S:-70} python3 -m pytest tests --ignore=tests/test_build.py \
  -n 16 -q -p no:cacheprovider -k "${TEST_K:-bf16 or tiled_epilogue_matches or infinities_through}" \
  > $OUT/tests_main.log 2>&1; echo "tests rc=$? $(( $(date +%s) - T0 ))s"; tail -1 $OUT/tests_main.log)
grep -hE "^(FAILED|ERROR)" $OUT/tests_*.log | head; tail -3 $OUT/err.log
grep -qiE "error:|\berror\b" $OUT/build_*.log || rm -f $OUT/build_*.log
