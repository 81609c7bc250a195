#!/bin/bash
# Two candidates stacked, in one call: $B1 against $A (main) on the pairs of $COMBINE1's combine, then $BC ($B1 with
# the second candidate on it) against $B1 on $COMBINE2's, the three trees built at once (callTR.sh's A/Bs, $ROUNDS
# rounds of $AB_S s); then the GPU suite on $BC until $SUITE_END s (500) after the call's start, then the padding
# sweep of $BC (FUSEDLSE_COMMIT=$REV, cut off after $SWEEP_S s, 75). The A/Bs' JSON files end as one, ab.jsonl (each
# line with its file's name), so that at most 8 files come back. Carry .devrun on a fresh machine (make_trees.sh with
# TREES="$A $B1 $BC"). docs/limits.md §130.
set -u
A=${A:-main}; REV=${REV:?REV=<the commit of BC>}; T0_CALL=$(date +%s); ROOT=$(pwd)
SUITE_END= COMBINE=$COMBINE1 A=$A B=$B1 ALSO_BUILD="$BC" bash .devrun/callTR.sh
SUITE_END= COMBINE=$COMBINE2 BUILT=1 A=$B1 B=$BC AB_TAG=tc bash .devrun/callTR.sh
for f in $OUT/tr_*.jsonl $OUT/tc_*.jsonl; do
  [ -f "$f" ] && sed "s/^{/{\"file\": \"$(basename $f)\", /" "$f"
done > $OUT/ab.jsonl && rm -f $OUT/tr_*.jsonl $OUT/tc_*.jsonl
(W=$BC; T0=$T0_CALL; SUITE_END=${SUITE_END:-500}; cd .devrun/trees/$W
 SUITE="tests bench/test_problems.py --ignore=tests/test_build.py" source $ROOT/.devrun/suite.sh)
W=$BC; T0=$T0_CALL; SWEEP_S=${SWEEP_S:-75}; source .devrun/padding_sweep.sh
echo "call $(( $(date +%s) - T0_CALL ))s"
