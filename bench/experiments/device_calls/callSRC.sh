#!/bin/bash
# Where the tap reader's instructions go, line by line: Nsight Compute's SourceCounters of tap_grid_kernel alone in the
# padded forwards of $PN (rNN:p ...; pad_ncu.py run, the padding-0 forwards' kernels filtered out), tree
# .devrun/trees/$TREE built alone (sm_90, -lineinfo as setup.py builds). Files: the build's log, the report
# (src.ncu-rep), its source page as CSV with CUDA lines (src_cuda.csv) and SASS (src_sass.csv), ncu's stderr.
# Carry .devrun on a fresh machine (docs/limits.md §118).
set -u
W=${TREE:?TREE=<the tree>}; ARCHS=${ARCHS:-9.0}
source .devrun/build_module.sh
PYTHONPATH=python:bench timeout ${SRC_S:-150} ncu --clock-control none --profile-from-start off \
  --kernel-name regex:tap_grid_kernel --section SourceCounters --section WarpStateStats --import-source yes \
  -f -o $OUT/src python3 $ROOT/.devrun/pad_ncu.py run ${PN:?PN=rNN:p ...} > /dev/null 2> $OUT/src.err
echo "ncu rc=$? $(( $(date +%s) - T0 ))s"
ncu -i $OUT/src.ncu-rep --page source --csv --print-source cuda > $OUT/src_cuda.csv 2>> $OUT/src.err
echo "cuda page rc=$? $(wc -c < $OUT/src_cuda.csv) bytes"
# Without --print-source (older ncu): its default view.
[ -s $OUT/src_cuda.csv ] || ncu -i $OUT/src.ncu-rep --page source --csv > $OUT/src_cuda.csv 2>> $OUT/src.err
ncu -i $OUT/src.ncu-rep --page source --csv --print-source sass > $OUT/src_sass.csv 2>> $OUT/src.err
echo "sass page rc=$? $(wc -c < $OUT/src_sass.csv) bytes"
tail -3 $OUT/src.err; ls -la $OUT
