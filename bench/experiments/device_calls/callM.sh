#!/bin/bash
# s71 (docs/limits.md section 99: padding's middle rows summed whole, border columns taken off) in one call of $TOTAL
# s (default 575): the tree $TREE (default s71, make_trees.sh) built for $ARCHS (default 9.0; test_build.py then left
# to CI), grid_ab.py over the public sweep at the paddings $PADS (default 1,2: the rule takes borders of at most 2
# columns a side) with the rows walk's middle forced off ("walks") and by the rule (ROUNDS 2, 120 s at most; none with
# PADS=none), then the whole GPU suite in what is left (or, with SUITE set, pytest over those test files alone).
W=${TREE:-s71}; TOTAL=${TOTAL:-575}; ARCHS=${ARCHS:-9.0}; PADS=${PADS:-1,2}
(source .devrun/build_module.sh
 if [ "$PADS" != none ]; then
   PADS=$PADS MODES=walks,rule ROUNDS=2 REP=30 PYTHONPATH=python:. timeout 120 python3 $ROOT/.devrun/grid_ab.py \
     $OUT/span_$W.jsonl > /dev/null 2> $OUT/err_$W.log
   echo "grid_ab rc=$? $(( $(date +%s) - T0 ))s"; tail -2 $OUT/err_$W.log
   python3 - $OUT/span_$W.jsonl <<'PY'
import json, math, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
taken = [r for r in rows if r["middle_by_span"]]
logs = [math.log(r["ratio"]["rule"]) for r in taken]
print(len(rows), "rows,", len(taken), "by span; rule / walks geomean",
      round(math.exp(sum(logs) / max(1, len(logs))), 4) if logs else None)
for r in rows:
    if r["middle_by_span"] or abs(r["ratio"]["rule"] - 1) > 0.03:
        print(r["name"], r["padding"], r["middle_by_span"], r["us"], r["ratio"]["rule"])
PY
 fi
 SUITE_END=$(( TOTAL - 15 )) source $ROOT/.devrun/suite.sh)
