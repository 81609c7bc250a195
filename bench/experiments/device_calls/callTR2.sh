#!/bin/bash
# Two candidates and both together in one call: $B1 (tap reader) and $B2 (the combine's shares) against $A (main),
# and $BC (both): all four trees built at once, then callTR.sh's tap-reader A/B of $B1 ($ROUNDS, $AB_S s), the GPU
# suite on $BC until $SUITE_UNTIL s (470), then shares_weight_ab.py of $B2 (one round, $SHARES_S s, 70). Carry
# .devrun on a fresh machine (make_trees.sh with TREES="$A $B1 $B2 $BC"). docs/limits.md §122.
set -u
A=${A:-main}; T0_CALL=$(date +%s); ROOT=$(pwd)
SUITE_END= A=$A B=$B1 ALSO_BUILD="$B2 $BC" bash .devrun/callTR.sh
(W=$BC; T0=$T0_CALL; SUITE_END=${SUITE_UNTIL:-470}; cd .devrun/trees/$W
 SUITE="tests bench/test_problems.py --ignore=tests/test_build.py" source $ROOT/.devrun/suite.sh)
SUITE_END= BUILT=1 A=$A B=$B2 AB_SCRIPT=shares_weight_ab.py AB_KEY=shares AB_TAG=sh ROUNDS=1 AB_S=${SHARES_S:-70} \
  bash .devrun/callTR.sh
echo "call $(( $(date +%s) - T0_CALL ))s"
