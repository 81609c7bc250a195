#!/bin/bash
# The committed H200 sweep of one built tree (docs/limits.md section 97): bench/sweep.py --named, every provider, in
# .devrun/trees/$TREE as callL.sh or callB.sh built it (run right after them, no carry, on the same warm machine).
# FUSEDLSE_COMMIT names the revision the results come from ($REV: the tree's commit, which the archived tree cannot
# tell; the device's own checkout is main's). Writes $OUT/sweep/sweep.{json,md,png}; about 355 s on an H200.
set -u
W=${TREE:?TREE=<the tree>}; REV=${REV:?REV=<its commit>}
nvidia-smi --query-gpu=name --format=csv,noheader; T0=$(date +%s)
cd .devrun/trees/$W
FUSEDLSE_COMMIT=$REV PYTHONPATH=python:. timeout 560 python3 bench/sweep.py --named --out $OUT/sweep \
  > $OUT/sweep_$W.log 2>&1; echo "sweep rc=$? $(( $(date +%s) - T0 ))s"
sed -n '1,40p' $OUT/sweep/sweep.md 2>/dev/null | grep -E "^\| (cuda|\*reach\*|headline|odd509|mid|short|skinny)|slower|^- "
