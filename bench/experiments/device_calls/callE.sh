#!/bin/bash
# The tiled and cuBLAS epilogues on 16-bit problems whose cuBLAS GEMM runs over bfloat16 pieces (docs/limits.md
# section 105) in one call: main's tree (make_trees.sh) built for $ARCHS (default 9.0), pieces_epilogues.py in it
# (150 s at most) and a summary; on an H200, the GPU suite of main first (suite.sh), since the issues ask for it there.
W=main; ARCHS=${ARCHS:-9.0}
(source .devrun/build_module.sh
 if nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200; then
   SUITE="tests bench/test_problems.py --ignore=tests/test_build.py" SUITE_END=400 source $ROOT/.devrun/suite.sh
 fi
 PYTHONPATH=python:. timeout 150 python3 $ROOT/.devrun/pieces_epilogues.py $OUT/pieces_epilogues.jsonl \
   > /dev/null 2> $OUT/pieces_epilogues.err
 echo "pieces_epilogues rc=$? $(( $(date +%s) - T0 ))s"; tail -3 $OUT/pieces_epilogues.err
 python3 - $OUT/pieces_epilogues.jsonl <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(r["name"], r["shape"], r["c_out"], r["dtype"][6:], r["planned"], r["factors"], "pred t/c",
          round(r["tiled_us_pred"]), round(r["cublas_us_pred"]), "meas t/c", r["tiled_lse"], r["cublas_lse"],
          "gemm", r["pieces_gemm_us"], "shortcut", r["shortcut_us"])
PY
)
