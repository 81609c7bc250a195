#!/bin/bash
# s74 (docs/limits.md section 103: cuBLAS's GEMM over bfloat16 pieces for 16-bit x) in one call: main's and s74's
# trees (make_trees.sh, TREES="main s74") built for $ARCHS (default 9.0) in parallel; pieces_ab.py in each build, the
# processes alternating twice; then the whole GPU suite on s74 (suite.sh) in what is left of $TOTAL s.
PAIR="main s74"; source .devrun/build_pair.sh
AB_PY=pieces_ab.py AB_TAG=pieces AB_S=${AB_S:-75} source .devrun/ab_rounds.sh
python3 - $OUT <<'PY'
import json, math, sys
out = sys.argv[1]
best, info = {}, {}
for tree in ("main", "s74"):
    for line in open(f"{out}/pieces_{tree}.jsonl"):
        r = json.loads(line)
        best[(r["name"], tree)] = min(best.get((r["name"], tree), math.inf), r["us"])
        if tree == "s74":
            info[r["name"]] = (r["epilogue"], r["factors"], r.get("shortcut_us"), "%.1e" % r["err_vs_f64_shortcut"])
for name in info:
    if (name, "main") in best:
        a, b = best[(name, "main")], best[(name, "s74")]
        print(name, info[name], a, b, round(b / a, 4))
PY
W=s74; cd $ROOT/.devrun/trees/$W; SUITE="tests bench/test_problems.py --ignore=tests/test_build.py" \
  SUITE_END=$(( ${TOTAL:-560} - 15 )) source $ROOT/.devrun/suite.sh
