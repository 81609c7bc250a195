#!/bin/bash
# Everything a one-tree candidate needs in one call, for sessions whose starts mostly fail (docs/limits.md §115-116):
# .devrun/trees/$TREE built alone (sm_90), the GPU suite on it until $SUITE_END s after the start (360), then $AB.py
# (combine_lanes unless set; its own A/B within the build, cut $AB_S s in, 130), then the padding sweep
# (FUSEDLSE_COMMIT=$REV, cut off after $SWEEP_S s, 75). Carry .devrun on a fresh machine. About 580 s.
set -u
W=${TREE:?TREE=<the tree>}; REV=${REV:?REV=<its commit>}; AB=${AB:-combine_lanes}; ARCHS=${ARCHS:-9.0}
source .devrun/build_module.sh
SUITE="tests bench/test_problems.py --ignore=tests/test_build.py" SUITE_END=${SUITE_END:-360} source $ROOT/.devrun/suite.sh
PYTHONPATH=python:bench timeout $(( ${AB_S:-130} + 20 )) python3 $ROOT/.devrun/$AB.py $OUT/$AB.jsonl ${AB_S:-130} \
  > $OUT/$AB.log 2>&1; echo "$AB rc=$? $(( $(date +%s) - T0 ))s"
FUSEDLSE_COMMIT=$REV PYTHONPATH=python:. timeout ${SWEEP_S:-75} python3 bench/padding_groups.py --every 1 \
  --variants p1,p2,p3 --stem padding_sweep --out $OUT > $OUT/padding_sweep.log 2>&1
echo "padding sweep rc=$? $(( $(date +%s) - T0 ))s"; tail -3 $OUT/padding_sweep.log
