#!/bin/bash
# s72 (docs/limits.md section 101) in one call: main's and s72's trees (make_trees.sh, TREES="main s72") built for
# $ARCHS (default 9.0) in parallel; groups_ab.py in each build, the processes alternating twice (callG2.sh's A/B,
# without its build); then the whole GPU suite on s72 (suite.sh) in what is left of $TOTAL s.
PAIR="main s72" source .devrun/build_pair.sh
sed -n '/^PAIR="main s72" AB_PY/,$p' .devrun/callG2.sh > $OUT/ab.sh; (source $OUT/ab.sh)
W=s72; cd $ROOT/.devrun/trees/$W; SUITE_END=$(( ${TOTAL:-480} - 15 )) source $ROOT/.devrun/suite.sh
