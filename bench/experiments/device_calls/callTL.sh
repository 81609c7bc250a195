#!/bin/bash
# timeline.py of $SPECS on tree $W (main), built for sm_90 alone: where the near-median padded forwards' time goes on
# the GPU's clock (docs/limits.md §125).
W=${W:-main}; ARCHS=9.0; source .devrun/build_module.sh
PYTHONPATH=python:. timeout ${TL_S:-240} python3 $ROOT/.devrun/timeline.py $OUT/timeline_$W.jsonl $SPECS 2>$OUT/tl_err.log
echo "timeline rc=$? $(( $(date +%s) - T0 ))s"; tail -3 $OUT/tl_err.log | cut -c1-300
