#!/bin/bash
# callTR.sh (tree $B against $A on the tap reader's pairs, then the GPU suite on $B until $SUITE_END s), then the
# padding sweep of $B (padding_sweep.sh, FUSEDLSE_COMMIT=$REV, cut off after $SWEEP_S s, 75): a candidate's A/B,
# suite and sweep in one call. Carry .devrun on a fresh machine (make_trees.sh with TREES="$A $B"). docs/limits.md §120.
set -u
REV=${REV:?REV=<the commit of B>}; T0_CALL=$(date +%s)
bash .devrun/callTR.sh
W=$B; T0=$T0_CALL; SWEEP_S=${SWEEP_S:-75}; source .devrun/padding_sweep.sh
