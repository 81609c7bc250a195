#!/bin/bash
# A short call ($TOTAL s, default 250): build the tree $W (default s69) for $ARCHS (9.0 unless set), border_pass.py
# (callX.sh), then long_planes.py over MODES=rule,turns (one round) in what is left.
W=${TREE:-s69}; TOTAL=${TOTAL:-250}; export ARCHS=${ARCHS:-9.0}
(source .devrun/build_module.sh
 (cd $ROOT && TREE=$W TOTAL=$(( TOTAL - 45 - ($(date +%s) - T0) )) bash .devrun/callX.sh)
 LEFT=$(( TOTAL - ($(date +%s) - T0) ))
 if [ $LEFT -gt 15 ]; then
   MODES=rule,turns ROUNDS=1 PYTHONPATH=python:. timeout $LEFT python3 $ROOT/.devrun/long_planes.py \
     $OUT/lp_$W.jsonl 2> $OUT/err_$W.log
   echo "long_planes rc=$? $(( $(date +%s) - T0 ))s"
 fi)
