#!/bin/bash
# Everything a one-tree candidate needs in one call, for sessions whose starts mostly fail (docs/limits.md §115-116):
# .devrun/trees/$TREE built alone (sm_90); each of $AB's scripts (combine_lanes unless set; A/Bs within the build,
# each cut $AB_S s in, 40); the GPU suite on it until $SUITE_END s after the call's start (360); with KPROF set,
# kprof.py's per-kernel times of those padded sweep rows (rNN:p ...); then the padding sweep (FUSEDLSE_COMMIT=$REV, cut
# off after $SWEEP_S s, 75; 0 skips it; its log's tail in the output, not under $OUT: at most 8 files come back, and
# two A/Bs, the build, the suite and the sweep's json and md are 8; KPROF's two more: one A/B then). Shortest first,
# so a call cut off by its limit keeps the most. Carry .devrun on a fresh machine, not on a warm one's later calls
# (it replaces what they built there). About 400 s.
set -u
W=${TREE:?TREE=<the tree>}; REV=${REV:?REV=<its commit>}; AB=${AB:-combine_lanes}; ARCHS=${ARCHS:-9.0}
source .devrun/build_module.sh
for A_B in $AB; do
  PYTHONPATH=python:bench timeout $(( ${AB_S:-40} + 20 )) python3 $ROOT/.devrun/$A_B.py $OUT/$A_B.jsonl ${AB_S:-40} \
    > $OUT/$A_B.log 2>&1; echo "$A_B rc=$? $(( $(date +%s) - T0 ))s"
done
SUITE="tests bench/test_problems.py --ignore=tests/test_build.py" SUITE_END=${SUITE_END:-360} \
  source $ROOT/.devrun/suite.sh
if [ -n "${KPROF:-}" ]; then
  PYTHONPATH=python:. timeout 60 python3 $ROOT/.devrun/kprof.py $W $KPROF > $OUT/kprof.jsonl 2> $OUT/kprof.err
  echo "kprof rc=$? $(( $(date +%s) - T0 ))s"
fi
[ "${SWEEP_S:-75}" -gt 0 ] || exit 0
FUSEDLSE_COMMIT=$REV PYTHONPATH=python:. timeout ${SWEEP_S:-75} python3 bench/padding_groups.py --every 1 \
  --variants p1,p2,p3 --stem padding_sweep --out $OUT > /tmp/padding_sweep.log 2>&1
echo "padding sweep rc=$? $(( $(date +%s) - T0 ))s"; tail -3 /tmp/padding_sweep.log
