#!/bin/bash
# s69 and s71 (docs/limits.md sections 99-100) in one call, before the suite (callM2 then suite.sh in a second call):
# main's and s71's trees (make_trees.sh, TREES="main s71"; s71 = main + s69 + s71) built for $ARCHS (default 9.0) in
# parallel; then grid_ab.py in s71 at padding 1 and 2 on the rows s71's rule takes and two it leaves (r16, r44),
# forced off ("walks") against the rule, 3 rounds; then s69's A/B: the rule at padding 0 on r35 and the 11
# public-sweep problems whose plane-lanes pieces s69's fit changes, in main's build and in s71's, the processes
# alternating twice (each its least of 3 rounds). Writes build_*.log, span_s71.jsonl, s69_{main,s71}.jsonl.
PAIR="main s71" source .devrun/build_pair.sh
cd $ROOT/.devrun/trees/s71
MODES=walks,rule ROUNDS=3 REP=30 PADS=1,2 PYTHONPATH=python:. timeout 150 python3 $ROOT/.devrun/grid_ab.py \
  $OUT/span_s71.jsonl r16 r19 r29 r44 r48 r49 r60 r61 > /dev/null 2> $OUT/err_s71.log
echo "span rc=$? $(( $(date +%s) - T0 ))s"; tail -2 $OUT/err_s71.log
S69="r17 r18 r20 r30 r35 r36 r38 r41 r47 r49 r55 r57"
for round in 1 2; do
  for W in main s71; do
    (cd $ROOT/.devrun/trees/$W && MODES=rule ROUNDS=3 REP=40 PADS=0 PYTHONPATH=python:. timeout 80 \
      python3 $ROOT/.devrun/grid_ab.py $OUT/s69_$W.jsonl $S69 > /dev/null 2>> $OUT/err_s71.log)
    echo "s69 $W round $round rc=$? $(( $(date +%s) - T0 ))s"
  done
done
python3 - $OUT <<'PY'
import json, math, sys
out = sys.argv[1]
rows = [json.loads(line) for line in open(f"{out}/span_s71.jsonl")]
taken = [r for r in rows if r["middle_by_span"]]
logs = [math.log(r["ratio"]["rule"]) for r in taken]
print(len(rows), "span rows,", len(taken), "by span; rule/walks geomean",
      round(math.exp(sum(logs) / len(logs)), 4) if logs else None)
for r in rows:
    print(" ", r["name"], r["padding"], r["middle_by_span"], r["us"], r["ratio"]["rule"])
best = {}
for tree in ("main", "s71"):
    for line in open(f"{out}/s69_{tree}.jsonl"):
        r = json.loads(line)
        key = (r["name"], tree)
        best[key] = min(best.get(key, math.inf), r["us"]["rule"])
names = sorted({k[0] for k in best})
logs = []
for n in names:
    a, b = best.get((n, "main")), best.get((n, "s71"))
    if a and b:
        logs.append(math.log(b / a))
        print(" s69", n, a, b, round(b / a, 4))
print("s69/main geomean", round(math.exp(sum(logs) / max(1, len(logs))), 4))
PY
