#!/bin/bash
# Tree $B (default s78: docs/limits.md section 105, the cost model counts cuBLAS's GEMM over bfloat16 pieces; s79:
# section 106) against $A (default main) in one call: both trees (make_trees.sh, TREES="$A $B") built in parallel for
# $ARCHS (default 9.0); plan_changes.py's plans in each, the problems whose plan differs listed, then their forwards
# (and CONTROLS whose plan does not) timed in each build in turn, twice, $TIME_S s (70) a run; a summary of each
# problem's least time, $B over $A; with SUITE_END set, the GPU suite on $B until then (suite.sh). The build logs are
# left out of $OUT where both builds pass (8 files come back at most).
A=${A:-main}; B=${B:-s78}; PAIR="$A $B"; source .devrun/build_pair.sh
for W in $PAIR; do
  (cd $ROOT/.devrun/trees/$W && PYTHONPATH=python:. timeout 90 python3 $ROOT/.devrun/plan_changes.py plans \
    $OUT/plans_$W.json > /dev/null 2>> $OUT/err.log)
  echo "plans $W rc=$? $(( $(date +%s) - T0 ))s"
done
python3 - $OUT $A $B <<'PY'
import json, sys
a, b = (json.load(open(f"{sys.argv[1]}/plans_{w}.json")) for w in sys.argv[2:4])
changed = [k for k in a if a[k] != b.get(k)]
print(len(a), "cases,", len(changed), "plans differ")
for k in changed:
    print(k, json.dumps(a[k], separators=(",", ":")), "->", json.dumps(b[k], separators=(",", ":")))
PY
for round in 1 2; do
  for W in $PAIR; do
    (cd $ROOT/.devrun/trees/$W && PYTHONPATH=python:. timeout ${TIME_S:-70} python3 $ROOT/.devrun/plan_changes.py \
      time $OUT/plans_$A.json $OUT/plans_$B.json $OUT/time_$W.jsonl > /dev/null 2>> $OUT/err.log)
    echo "time $W round $round rc=$? $(( $(date +%s) - T0 ))s"
  done
done
tail -3 $OUT/err.log
python3 - $OUT $A $B <<'PY'
import json, math, sys
best, plan = {}, {}
a_tree, b_tree = sys.argv[2:4]
for w in (a_tree, b_tree):
    for line in open(f"{sys.argv[1]}/time_{w}.jsonl"):
        r = json.loads(line)
        best[(r["name"], w)] = min(best.get((r["name"], w), math.inf), r["us"])
        if w == b_tree:
            plan[r["name"]] = (r["changed"], r["plan"])
for name, (changed, p) in plan.items():
    if (name, a_tree) in best:
        a, b = best[(name, a_tree)], best[(name, b_tree)]
        print(name, "changed" if changed else "control", a, b, round(b / a, 3), json.dumps(p, separators=(",", ":")))
PY
grep -qiE "error:|\berror\b" $OUT/build_*.log || rm -f $OUT/build_*.log
if [ -n "${SUITE_END:-}" ]; then
  W=$B; cd $ROOT/.devrun/trees/$W; SUITE="tests bench/test_problems.py --ignore=tests/test_build.py" \
    source $ROOT/.devrun/suite.sh
fi
