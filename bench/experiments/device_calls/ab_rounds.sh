# Sourced by the A/B call scripts (callG2.sh, callG3.sh, callW.sh) once their trees are built: runs .devrun/$AB_PY
# in each tree of $PAIR in turn (its own module first: PYTHONPATH=python:.), twice, each run cut off after $AB_S s
# (90), into $OUT/${AB_TAG}_<tree>.jsonl, its errors into $OUT/err_$AB_TAG.log; needs ROOT and T0.
for round in 1 2; do
  for W in $PAIR; do
    (cd $ROOT/.devrun/trees/$W && PYTHONPATH=python:. timeout ${AB_S:-90} \
      python3 $ROOT/.devrun/$AB_PY $OUT/${AB_TAG}_$W.jsonl > /dev/null 2>> $OUT/err_$AB_TAG.log)
    echo "$AB_TAG $W round $round rc=$? $(( $(date +%s) - T0 ))s"
  done
done
tail -3 $OUT/err_$AB_TAG.log
