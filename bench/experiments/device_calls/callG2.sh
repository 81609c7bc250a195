#!/bin/bash
# s72 (docs/limits.md section 101: regroup_nan_rows after every grouped padding-0 and planned cropped GEMM) against
# main, in one call, run after callM.sh built s72 on the same warm machine (no carry needed then): main's tree built
# for $ARCHS (default 9.0), then groups_ab.py in main's build and in s72's, the processes alternating twice (each its
# least of 3 rounds). Writes build_main.log, groups_{main,s72}.jsonl and the A/B per row and group.
export CUDA_HOME=/usr/local/cuda
nvidia-smi --query-gpu=name --format=csv,noheader; T0=$(date +%s); ROOT=$(pwd); ARCHS=${ARCHS:-9.0}
(cd .devrun/trees/main && MAX_JOBS=16 make module PYTHON=python3 GPU_ARCHS=$ARCHS > $OUT/build_main.log 2>&1
 echo "build main rc=$? $(( $(date +%s) - T0 ))s")
PAIR="main s72" AB_PY=groups_ab.py AB_TAG=groups AB_S=${AB_S:-100} source .devrun/ab_rounds.sh
python3 - $OUT <<'PY'
import json, math, sys
out = sys.argv[1]
best = {}
for tree in ("main", "s72"):
    for line in open(f"{out}/groups_{tree}.jsonl"):
        r = json.loads(line)
        for g, t in r["us"].items():
            key = (r["name"], g, tree)
            best[key] = min(best.get(key, math.inf), t)
logs = {}
for (name, g, tree) in sorted(best):
    if tree != "main" or (name, g, "s72") not in best:
        continue
    a, b = best[(name, g, "main")], best[(name, g, "s72")]
    logs.setdefault(g, []).append(math.log(b / a))
    print(name, "g" + g, a, b, round(b / a, 4))
for g, l in sorted(logs.items()):
    print("g" + g, "s72/main geomean", round(math.exp(sum(l) / len(l)), 4), "worst", round(math.exp(max(l)), 4),
          len(l), "rows")
PY
