#!/bin/bash
# Source trees for the device calls: .devrun/trees/<rev> for each git revision in $TREES (default: main), by git
# archive (committed files only; no results or experiments). The series s51-s65 (bench/experiments/s*_next.mbox)
# landed on main as 43ee225..1e68fc8 (docs/limits.md section 92): its trees are main's ancestors now, e.g.
# TREES="main 611871c" for main against the code before it. Run in the repository root.
set -euo pipefail
rm -rf .devrun/trees && mkdir -p .devrun/trees
for t in ${TREES:-main}; do
  mkdir -p .devrun/trees/$t
  git archive $t | tar -x -C .devrun/trees/$t --exclude='bench/results' --exclude='bench/experiments'
done
du -sh .devrun
