#!/bin/bash
# One call: callE2.sh (main against s91, the suite on s91 until 440 s), then callKA.sh on s91 (keep_ab.py for $AB_S
# seconds, the padding sweep until 590 s after the start).
S0=$(date +%s)
(A=main B=s91 SUITE_END=${SUITE_END:-440} bash .devrun/callE2.sh)
LEFT=$(( 590 - ($(date +%s) - S0) ))
TREE=s91 REV=0c4ce00 AB_S=${AB_S:-80} SWEEP_S=$(( LEFT - ${AB_S:-80} - 20 )) bash .devrun/callKA.sh
echo "all $(( $(date +%s) - S0 ))s"
cd $OUT && tar czf all.tgz --exclude=all.tgz . && find . -type f ! -name all.tgz -delete
