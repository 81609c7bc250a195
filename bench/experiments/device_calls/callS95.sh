#!/bin/bash
# One tree alone in one call (docs/limits.md section 115): build .devrun/trees/$TREE (build_pair.sh, sm_90); the GPU
# suite on it until $SUITE_END s after the start (380; 0 leaves it out); combine_lanes.py over $LANES_SPECS (each lane
# count a plane forced beside the rule's; 32 is the warp per plane, main's combine without cells) until $LANES_END
# (480); bench/padding_groups.py's padding sweep (FUSEDLSE_COMMIT=$REV) until $SWEEP_END (575).
set -u
W=${TREE:?TREE=<the tree>}; REV=${REV:?REV=<its commit>}; PAIR="$W"; source .devrun/build_pair.sh
cd .devrun/trees/$W
if [ "${SUITE_END:-380}" != 0 ]; then
  SUITE="tests bench/test_problems.py --ignore=tests/test_build.py" SUITE_END=${SUITE_END:-380} \
    source $ROOT/.devrun/suite.sh
fi
PYTHONPATH=python:. timeout $(( ${LANES_END:-480} - ($(date +%s) - T0) )) python3 $ROOT/.devrun/combine_lanes.py \
  $OUT/combine_lanes.jsonl ${LANES_SPECS:?} > $OUT/combine_lanes.log 2>&1
echo "combine_lanes rc=$? $(( $(date +%s) - T0 ))s"; tail -25 $OUT/combine_lanes.log
FUSEDLSE_COMMIT=$REV PYTHONPATH=python:. timeout $(( ${SWEEP_END:-575} - ($(date +%s) - T0) )) python3 \
  bench/padding_groups.py --every 1 --variants p1,p2,p3 --stem padding_sweep --out $OUT > $OUT/padding_sweep.log 2>&1
echo "padding sweep rc=$? $(( $(date +%s) - T0 ))s"; tail -3 $OUT/padding_sweep.log
