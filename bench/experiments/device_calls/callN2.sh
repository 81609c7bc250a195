#!/bin/bash
# docs/limits.md section 103's next steps 1 and 3 after s75's suite, on a warm machine with $TREE (main) built for
# sm_90 (callM.sh or callR.sh first; no carry): reader_pieces.py (the named split shapes' reader, pieces forced), then
# pieces_kernels.py with seed 13's r61 (R61=1). About 60 s.
W=${TREE:-main}; ROOT=$(pwd); T0=$(date +%s); cd .devrun/trees/$W
PYTHONPATH=python:. timeout 90 python3 $ROOT/.devrun/reader_pieces.py $OUT/reader_pieces_$W.jsonl 2>/dev/null | cut -c1-600
R61=1 PYTHONPATH=python:. timeout 60 python3 $ROOT/.devrun/pieces_kernels.py $OUT/kernels_$W.jsonl 2>/dev/null | cut -c1-900
echo "done $(( $(date +%s) - T0 ))s"
