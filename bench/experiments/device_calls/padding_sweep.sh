# Sourced by callTRS.sh and callSW.sh: the padding sweep of tree $W's code (bench/padding_groups.py, every problem,
# padding 1-3, FUSEDLSE_COMMIT=$REV) into $OUT/padding_sweep.*, cut off after $SWEEP_S s (80), then its last lines and
# the seconds since $T0. Run from the repository root.
(cd .devrun/trees/$W && FUSEDLSE_COMMIT=$REV PYTHONPATH=python:. timeout ${SWEEP_S:-80} python3 \
  bench/padding_groups.py --every 1 --variants p1,p2,p3 --stem padding_sweep --out $OUT > $OUT/padding_sweep.log 2>&1
 echo "padding sweep rc=$? $(( $(date +%s) - T0 ))s"; tail -8 $OUT/padding_sweep.log)
