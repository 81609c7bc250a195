#!/bin/bash
# Tree $B against $A (default main) on the tap reader: both built in parallel for $ARCHS (build_pair.sh), then
# tap_reader_ab.py in each in turn, $ROUNDS times (2), $AB_S s (25) a run; a summary line a pair (each tree's least
# forward, µs, B over A, and each one's over its own padding-0 forward); then with SUITE_END set the GPU suite on $B
# until then (suite.sh). Carry .devrun on a fresh machine (make_trees.sh with TREES="$A $B"). docs/limits.md §118.
# TAP_SUMS and COMBINE (tap_reader_ab.py's) pick the pairs: "channel_kernels" for the channels walk (§120),
# COMBINE=lane_groups for one combine's pairs alone (§128). AB_SCRIPT runs another A/B script of that form (its
# rows' times compared by AB_KEY, "rule"): shares_weight_ab.py with AB_KEY=shares (§121).
# ALSO_BUILD names more trees to build beside the pair; BUILT=1 skips the build (an earlier callTR.sh built them), and
# AB_TAG ("tr") prefixes the JSON files, so two A/Bs of one call keep theirs apart (callTR2.sh, §122).
A=${A:-main}; B=${B:?B=<the tree>}; TAG=${AB_TAG:-tr}
if [ -n "${BUILT:-}" ]; then
  T0=$(date +%s); ROOT=$(pwd)
else
  PAIR="$A $B ${ALSO_BUILD:-}"; source .devrun/build_pair.sh
fi
PAIR="$A $B"
for round in $(seq 1 ${ROUNDS:-2}); do
  for W in $PAIR; do
    (cd $ROOT/.devrun/trees/$W && PYTHONPATH=python:bench timeout $(( ${AB_S:-25} + 20 )) python3 \
      $ROOT/.devrun/${AB_SCRIPT:-tap_reader_ab.py} $OUT/${TAG}_${W}_$round.jsonl ${AB_S:-25} \
      > /dev/null 2>> $OUT/err.log)
    echo "${AB_SCRIPT:-tap_reader_ab.py} $W round $round rc=$? $(( $(date +%s) - T0 ))s"
  done
done
tail -3 $OUT/err.log
python3 - $OUT $A $B ${AB_KEY:-rule} $TAG <<'PY'
import glob, json, math, sys
out, a_tree, b_tree, key_us, tag = sys.argv[1:6]
best = {}
for w in (a_tree, b_tree):
    for path in glob.glob(f"{out}/{tag}_{w}_*.jsonl"):
        for line in open(path):
            r = json.loads(line)
            key = (r["name"], r["padding"])
            us, p0 = r["us"][key_us], r["us"]["p0"]
            old = best.get((key, w), (math.inf, math.inf))
            best[(key, w)] = (min(old[0], us), min(old[1], p0))
ratios = []
for (key, w), (us, p0) in sorted(best.items()):
    if w != b_tree or (key, a_tree) not in best:
        continue
    a_us, a_p0 = best[(key, a_tree)]
    ratios.append(us / a_us)
    print(f"{key[0]} p{key[1]} {a_tree} {a_us:.1f} ({a_us / a_p0:.3f}) {b_tree} {us:.1f} ({us / p0:.3f})",
          f"{us / a_us:.3f}")
if ratios:
    ratios.sort()
    print(f"{len(ratios)} pairs; {b_tree}/{a_tree} min {ratios[0]:.3f} median {ratios[len(ratios) // 2]:.3f} "
          f"max {ratios[-1]:.3f}; geomean {math.exp(sum(map(math.log, ratios)) / len(ratios)):.3f}")
PY
grep -qiE "error:|\berror\b" $OUT/build_*.log || rm -f $OUT/build_*.log
if [ -n "${SUITE_END:-}" ]; then
  W=$B; cd $ROOT/.devrun/trees/$W; SUITE="tests bench/test_problems.py --ignore=tests/test_build.py" \
    source $ROOT/.devrun/suite.sh
fi
