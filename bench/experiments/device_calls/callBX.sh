#!/bin/bash
# The shortest useful call ($TOTAL s, default 250): build the tree $W (default s69) for $ARCHS (9.0 unless set),
# border_pass.py, then long_planes.py over MODES=rule,turns (one round) in what is left.
W=${TREE:-s69}; TOTAL=${TOTAL:-250}; export ARCHS=${ARCHS:-9.0}
(source .devrun/build_module.sh
 export TORCH_CUDA_ARCH_LIST=$ARCHS
 PYTHONPATH=python:. timeout $(( TOTAL - 45 - ($(date +%s) - T0) )) python3 $ROOT/.devrun/border_pass.py \
   $OUT/border.jsonl > $OUT/border.log 2>&1
 echo "border rc=$? $(( $(date +%s) - T0 ))s"; grep -v "^W1\|Warning" $OUT/border.log | tail -14 | cut -c1-700
 LEFT=$(( TOTAL - ($(date +%s) - T0) ))
 if [ $LEFT -gt 15 ]; then
   MODES=rule,turns ROUNDS=1 PYTHONPATH=python:. timeout $LEFT python3 $ROOT/.devrun/long_planes.py \
     $OUT/lp_$W.jsonl > /dev/null 2> $OUT/err_$W.log
   echo "long_planes rc=$? $(( $(date +%s) - T0 ))s"
   python3 -c "
import json, sys
for row in map(json.loads, open(sys.argv[1])): print(row['name'], row['reader'], row['us'])" $OUT/lp_$W.jsonl
 fi)
