#!/bin/bash
# README's problems slower than torch's shortcut beyond the sweep (docs/limits.md section 103), on $TREE (s74) built
# for sm_90: known_losses.py.
W=${TREE:-s74}; ARCHS=9.0; source .devrun/build_module.sh
PYTHONPATH=python:. timeout 200 python3 $ROOT/.devrun/known_losses.py $OUT/known_losses.jsonl 2>$OUT/known_err.log
echo "known rc=$? $(( $(date +%s) - T0 ))s"; tail -3 $OUT/known_err.log | cut -c1-300
