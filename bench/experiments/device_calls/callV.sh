#!/bin/bash
# s83 (docs/limits.md section 107: the bfloat16 tile keeping its rows' pieces in shared memory) against main in one
# call: both trees built in parallel (build_pair.sh); the tiled, split-K, pieces, bf16-tile and infinity tests on s83;
# bf16_tile_epilogues.py in s83, then main, $TIME_S s (120) each. With SUITE_END set, the GPU suite on s83 after.
A=${A:-main}; B=${B:-s83}; PAIR="$A $B"; source .devrun/build_pair.sh
(cd $ROOT/.devrun/trees/$B && PYTHONPATH=python:. timeout ${TEST_S:-120} python3 -m pytest tests bench/test_problems.py \
  --ignore=tests/test_build.py -n 16 -q -p no:cacheprovider -k "${TEST_K:-tiled or split_k or pieces or bf16 or infinit}" \
  > $OUT/tests_$B.log 2>&1; echo "tests $B rc=$? $(( $(date +%s) - T0 ))s"; tail -2 $OUT/tests_$B.log)
grep -hE "^(FAILED|ERROR)" $OUT/tests_*.log | head -20
for W in $B $A; do
  (cd $ROOT/.devrun/trees/$W && ROUNDS=${ROUNDS:-2} PYTHONPATH=python:. timeout ${TIME_S:-120} python3 \
    $ROOT/.devrun/bf16_tile_epilogues.py $OUT/epilogues_$W.jsonl > /dev/null 2>> $OUT/err.log)
  echo "epilogues $W rc=$? $(( $(date +%s) - T0 ))s"
done
tail -3 $OUT/err.log
python3 - $OUT $A $B <<'PY'
import json, sys
out, a_tree, b_tree = sys.argv[1:4]
rows = {}
for w in (a_tree, b_tree):
    try:
        for line in open(f"{out}/epilogues_{w}.jsonl"):
            r = json.loads(line)
            rows.setdefault(r["name"], {})[w] = r
    except FileNotFoundError:
        pass
print("name shape c_out tile | main: tiled cublas planned | s83: tiled cublas planned (pred tiled cublas) planned")
for name, by in rows.items():
    a, b = by.get(a_tree, {}), by.get(b_tree, {})
    r = b or a
    print(name, r["shape"], r["c_out"], b.get("tiled_tile"), "|", a.get("tiled_lse"), a.get("cublas_lse"),
          a.get("planned_us"), "|", b.get("tiled_lse"), b.get("cublas_lse"), b.get("planned_us"),
          (b.get("tiled_us_pred"), b.get("cublas_us_pred")), b.get("planned"))
PY
grep -qiE "error:|\berror\b" $OUT/build_*.log || rm -f $OUT/build_*.log
if [ -n "${SUITE_END:-}" ]; then
  W=$B; cd $ROOT/.devrun/trees/$W; SUITE="tests bench/test_problems.py --ignore=tests/test_build.py" \
    source $ROOT/.devrun/suite.sh
fi
