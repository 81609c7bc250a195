#!/bin/bash
# Where the tap reader's instructions go, line by line: Nsight Compute's SourceCounters of tap_grid_kernel alone in the
# padded forwards of $PN (rNN:p ...; pad_ncu.py run, the padding-0 forwards' kernels filtered out), tree
# .devrun/trees/$TREE built alone (sm_90, -lineinfo as setup.py builds). Files: the build's log, the report
# (src.ncu-rep: over 16 MiB for three kernels, so it does not come back), its source page as CSV with CUDA lines
# (src_cuda.csv: the H100 machine's ncu printed the source without counts) and with SASS (src_sass.csv: a row and its
# counts a SASS instruction, about 5 MB), ncu's stderr. Carry .devrun on a fresh machine (docs/limits.md §119).
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
