#!/bin/bash
# s68 (docs/limits.md section 96): the plane-lanes grid persistent where a plane's pieces share a block. In the s68
# tree (make_trees.sh with TREES=s68), one build as make gpu-test builds it: long_planes.py (r35 and long planes:
# the rule, a block a turn as main, 2 and 4 pieces), then grid_ab.py over every public-sweep problem at padding 0:
# the rule, a block a turn (only rows whose pieces share a block differ from it) and persistent everywhere (s66 was
# chosen on an H100; r26 took 201 us in an H200 run before it, 210 in section 96's). callB.sh with TREE=s68 runs the
# suite on this build.
W=${TREE:-s68}; source .devrun/build_module.sh
PYTHONPATH=python:. timeout 200 python3 $ROOT/.devrun/long_planes.py $OUT/long_planes.jsonl 2> $OUT/long_planes_err.log
tail -3 $OUT/long_planes_err.log; echo "long_planes done $(( $(date +%s) - T0 ))s"
MODES=rule,turns,persistent ROUNDS=3 PYTHONPATH=python:. timeout 200 python3 $ROOT/.devrun/grid_ab.py \
  $OUT/grid_modes.jsonl > /dev/null 2> $OUT/grid_err.log
python3 - $OUT/grid_modes.jsonl <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print(len(rows), "rows; turns / rule or persistent / rule past 2%:")
for r in rows:
    if any(abs(ratio - 1) > 0.02 for ratio in r["ratio"].values()):
        print(r["name"], r["us"], r["ratio"])
PY
echo "all done $(( $(date +%s) - T0 ))s"
