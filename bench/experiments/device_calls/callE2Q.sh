#!/bin/bash
# One short call: callE2.sh (main against $B, no suite), then keep_ab.py on $B for $AB_S s (40); one tarball back.
S0=$(date +%s)
(A=main B=${B:-s92} bash .devrun/callE2.sh)
cd .devrun/trees/${B:-s92} && PYTHONPATH=python:bench timeout $(( ${AB_S:-40} + 15 )) python3 ../../keep_ab.py \
  $OUT/keep_ab.jsonl ${AB_S:-40} > $OUT/keep_ab.log 2>&1; echo "keep_ab rc=$? $(( $(date +%s) - S0 ))s"
cut -c1-150 $OUT/keep_ab.log
echo "all $(( $(date +%s) - S0 ))s"
cd $OUT && tar czf /tmp/all.tgz . && mv /tmp/all.tgz . && find . -type f ! -name all.tgz -delete
