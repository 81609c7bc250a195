#!/bin/bash
# s73 (docs/limits.md section 102: the gemv epilogue's wide block) in one call: main's and s73's trees (make_trees.sh,
# TREES="main s73") built for $ARCHS (default 9.0) in parallel; gemv_ab.py in each build, the processes alternating
# twice; tails.py on s73; then the whole GPU suite on s73 (suite.sh) in what is left of $TOTAL s.
PAIR="main s73"; source .devrun/build_pair.sh
AB_PY=gemv_ab.py AB_TAG=gemv source .devrun/ab_rounds.sh
python3 - $OUT <<'PY'
import json, math, sys
out = sys.argv[1]
best, info = {}, {}
for tree in ("main", "s73"):
    for line in open(f"{out}/gemv_{tree}.jsonl"):
        r = json.loads(line)
        best[(r["name"], tree)] = min(best.get((r["name"], tree), math.inf), r["us"])
        if tree == "s73":
            info[r["name"]] = (r["epilogue"], r["gemv_threads"], r["gemv_trips"], r["forced"])
logs = []
for name in info:
    if (name, "main") in best:
        a, b = best[(name, "main")], best[(name, "s73")]
        logs.append(math.log(b / a))
        print(name, info[name], a, b, round(b / a, 4))
print("s73/main geomean", round(math.exp(sum(logs) / len(logs)), 4), "worst", round(math.exp(max(logs)), 4), len(logs))
PY
(cd $ROOT/.devrun/trees/s73 && PYTHONPATH=python:. timeout 60 python3 $ROOT/.devrun/tails.py $OUT/tails_s73.jsonl mid headline_bf16 skinny 2>/dev/null | cut -c1-200)
W=s73; cd $ROOT/.devrun/trees/$W; SUITE="tests bench/test_problems.py --ignore=tests/test_build.py" \
  SUITE_END=$(( ${TOTAL:-560} - 15 )) source $ROOT/.devrun/suite.sh
