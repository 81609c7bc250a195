#!/bin/bash
# One call: callE2.sh (main against $B, default s91; the suite on $B until $SUITE_END s, 440), then callEL.sh with
# AB=keep_ab on $B (keep_ab.py for $AB_S seconds, 80; the padding sweep until 590 s after the start, FUSEDLSE_COMMIT=
# $REV; SWEEP_S=0 skips it); everything under $OUT into one tarball, all.tgz (8 files come back at most).
S0=$(date +%s); B=${B:-s91}
(A=main B=$B SUITE_END=${SUITE_END:-440} bash .devrun/callE2.sh)
LEFT=$(( 590 - ($(date +%s) - S0) ))
AB=keep_ab TREE=$B REV=${REV:-$B} AB_S=${AB_S:-80} AB_GRACE=15 SWEEP_S=${SWEEP_S:-$(( LEFT - ${AB_S:-80} - 20 ))} \
  bash .devrun/callEL.sh
echo "all $(( $(date +%s) - S0 ))s"
cd $OUT && tar czf /tmp/all.tgz . && mv /tmp/all.tgz . && find . -type f ! -name all.tgz -delete
