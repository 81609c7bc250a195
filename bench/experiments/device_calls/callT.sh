#!/bin/bash
# An sm_90 build of .devrun/trees/$TREE (default main), then tails.py over the named split shapes.
W=${TREE:-main}; ARCHS=${ARCHS:-9.0}
(source .devrun/build_module.sh
 PYTHONPATH=python:. timeout ${TAILS_S:-200} python3 $ROOT/.devrun/tails.py $OUT/tails_$W.jsonl $SHAPES 2> $OUT/tails_err_$W.log
 echo "tails rc=$? $(( $(date +%s) - T0 ))s"; tail -3 $OUT/tails_err_$W.log)
