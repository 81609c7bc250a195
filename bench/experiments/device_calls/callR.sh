#!/bin/bash
# s75 (docs/limits.md section 103's next step) in one call: its tree built for sm_90; the cuBLAS, pieces, graph and
# infinity tests of test_strategies.py and test_reliability.py; known_losses.py (seed 13's r61); pieces_kernels.py.
W=${TREE:-s75}; ARCHS=9.0; source .devrun/build_module.sh
PYTHONPATH=python:. timeout 120 python3 -m pytest tests/test_strategies.py tests/test_reliability.py \
  -k "cublas or pieces or graph or infinit" -n 16 -q -p no:cacheprovider > $OUT/tests_$W.log 2>&1
echo "tests rc=$? $(( $(date +%s) - T0 ))s"; tail -2 $OUT/tests_$W.log; grep -E "^(FAILED|ERROR)" $OUT/tests_$W.log | head
PYTHONPATH=python:. timeout 60 python3 $ROOT/.devrun/known_losses.py $OUT/known_$W.jsonl 2>/dev/null | cut -c1-400
PYTHONPATH=python:. timeout 40 python3 $ROOT/.devrun/pieces_kernels.py $OUT/kernels_$W.jsonl 2>/dev/null | cut -c1-900
echo "done $(( $(date +%s) - T0 ))s"
