#!/bin/bash
# s74's pieces tests and kernel timeline (docs/limits.md section 103) in one call: s74's tree built for sm_90, the
# tests that take the bfloat16 pieces, then pieces_kernels.py.
W=s74; ARCHS=9.0; source .devrun/build_module.sh
PYTHONPATH=python:. timeout 150 python3 -m pytest tests/test_strategies.py tests/test_reliability.py -k "pieces" -n 16 \
  -q -p no:cacheprovider > $OUT/pieces_tests.log 2>&1; echo "tests rc=$? $(( $(date +%s) - T0 ))s"; tail -3 $OUT/pieces_tests.log
PYTHONPATH=python:. timeout 120 python3 $ROOT/.devrun/pieces_kernels.py $OUT/pieces_kernels.jsonl 2>&1 | cut -c1-1500
echo "done $(( $(date +%s) - T0 ))s"
