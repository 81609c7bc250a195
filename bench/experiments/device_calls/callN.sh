#!/bin/bash
# The narrow epilogue summing strided tiny planes itself (docs/limits.md section 95), tree .devrun/trees/$TREE (s67
# unless set): the module built as make gpu-test builds it ("8.9;9.0+PTX"), narrow_ab.py (the rule, forced in place,
# forced to the plane-lanes reader), then the sweep's rows of strided tiny planes against the shortcuts. callB.sh with
# the same TREE then runs the suite on this build.
W=${TREE:-s67}; source .devrun/build_module.sh
PYTHONPATH=python:. timeout 200 python3 $ROOT/.devrun/narrow_ab.py $OUT/narrow_ab.jsonl 2> $OUT/narrow_ab_err.log
tail -3 $OUT/narrow_ab_err.log; echo "narrow_ab done $(( $(date +%s) - T0 ))s"
PYTHONPATH=python:. timeout 150 python3 bench/sweep.py --only r59,r58,r26,r25 \
  --providers cuda,torch_shortcut,torch_shortcut_compiled --out $OUT/rows > /dev/null 2>&1
grep -E "^\| r[0-9]" $OUT/rows/sweep.md; rm -f $OUT/rows/sweep.png; echo "all done $(( $(date +%s) - T0 ))s"
