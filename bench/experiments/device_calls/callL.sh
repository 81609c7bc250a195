#!/bin/bash
# s68 and s69 (docs/limits.md section 96), where a plane's pieces share a block and its blocks pass those the
# kernel holds at once: s68 a persistent grid there, s69 fewer pieces a plane (one wave). For each tree of $TREES
# (make_trees.sh with TREES="s68 s69"), one build as make gpu-test builds it, then long_planes.py (r35 and long
# planes: the rule, a block a turn, 2 and 4 pieces) and grid_ab.py over every public-sweep problem at padding 0 (the
# rule, a block a turn, persistent everywhere; s66 chose a block a turn on an H100, and r26 took 201 us in an H200
# run before it, 210 in section 96's). In s68 "turns" is main's grid; in s69 it is its rule. callB.sh with
# TREE=<the pick> runs the suite on that build. Both mboxes end with s70 (section 97: the narrow epilogue's dispatch
# written once; no timing changes), so that suite tests it too.
for W in ${TREES:-s68 s69}; do
  (source .devrun/build_module.sh
   PYTHONPATH=python:. timeout 150 python3 $ROOT/.devrun/long_planes.py $OUT/lp_$W.jsonl 2> $OUT/err_$W.log
   echo "$W long_planes done $(( $(date +%s) - T0 ))s"
   MODES=rule,turns,persistent ROUNDS=3 PYTHONPATH=python:. timeout 150 python3 $ROOT/.devrun/grid_ab.py \
     $OUT/grid_$W.jsonl > /dev/null 2>> $OUT/err_$W.log
   tail -3 $OUT/err_$W.log
   python3 - $OUT/lp_$W.jsonl $OUT/grid_$W.jsonl <<'PY'
import json, sys
for row in map(json.loads, open(sys.argv[1])):
    print(row["name"], row["us"])
rows = [json.loads(line) for line in open(sys.argv[2])]
print(len(rows), "sweep rows; turns / rule or persistent / rule past 2%:")
for r in rows:
    if any(abs(ratio - 1) > 0.02 for ratio in r["ratio"].values()):
        print(r["name"], r["us"], r["ratio"])
PY
   echo "$W done $(( $(date +%s) - T0 ))s")
done
