#!/bin/bash
# s78 (docs/limits.md section 105: the cost model counts cuBLAS's GEMM over bfloat16 pieces) against main in one
# call: both trees (make_trees.sh, TREES="main s78") built in parallel for $ARCHS (default 9.0); plan_changes.py's
# plans in each, the problems whose plan differs listed, then their forwards (and CONTROLS whose plan does not) timed
# in each build in turn, twice, $TIME_S s (70) a run; a summary of each problem's least time, s78 over main. The build
# logs are left out of $OUT where both builds pass (8 files come back at most).
PAIR="main s78"; source .devrun/build_pair.sh
for W in $PAIR; do
  (cd $ROOT/.devrun/trees/$W && PYTHONPATH=python:. timeout 90 python3 $ROOT/.devrun/plan_changes.py plans \
    $OUT/plans_$W.json > /dev/null 2>> $OUT/err.log)
  echo "plans $W rc=$? $(( $(date +%s) - T0 ))s"
done
python3 - $OUT <<'PY'
import json, sys
a, b = (json.load(open(f"{sys.argv[1]}/plans_{w}.json")) for w in ("main", "s78"))
changed = [k for k in a if a[k] != b.get(k)]
print(len(a), "cases,", len(changed), "plans differ")
for k in changed:
    print(k, json.dumps(a[k], separators=(",", ":")), "->", json.dumps(b[k], separators=(",", ":")))
PY
for round in 1 2; do
  for W in $PAIR; do
    (cd $ROOT/.devrun/trees/$W && PYTHONPATH=python:. timeout ${TIME_S:-70} python3 $ROOT/.devrun/plan_changes.py \
      time $OUT/plans_main.json $OUT/plans_s78.json $OUT/time_$W.jsonl > /dev/null 2>> $OUT/err.log)
    echo "time $W round $round rc=$? $(( $(date +%s) - T0 ))s"
  done
done
tail -3 $OUT/err.log
python3 - $OUT <<'PY'
import json, math, sys
best, plan = {}, {}
for w in ("main", "s78"):
    for line in open(f"{sys.argv[1]}/time_{w}.jsonl"):
        r = json.loads(line)
        best[(r["name"], w)] = min(best.get((r["name"], w), math.inf), r["us"])
        if w == "s78":
            plan[r["name"]] = (r["changed"], r["plan"])
for name, (changed, p) in plan.items():
    if (name, "main") in best:
        a, b = best[(name, "main")], best[(name, "s78")]
        print(name, "changed" if changed else "control", a, b, round(b / a, 3), json.dumps(p, separators=(",", ":")))
PY
grep -qiE "error:|\berror\b" $OUT/build_*.log || rm -f $OUT/build_*.log
