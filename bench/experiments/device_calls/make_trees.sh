#!/bin/bash
# Source trees for the device calls: .devrun/trees/<rev> for each git revision in $TREES (default: main), by git
# archive (committed files only; no results or experiments). The series s51-s65 (bench/experiments/s*_next.mbox)
# landed on main as 43ee225..1e68fc8 (docs/limits.md section 92): its trees are main's ancestors now, e.g.
# TREES="main 611871c" for main against the code before it. A name that is no revision but has an mbox,
# bench/experiments/<name>_next.mbox, becomes branch <name>: main with it applied. Run in the repository root.
set -euo pipefail
rm -rf .devrun/trees && mkdir -p .devrun/trees
for t in ${TREES:-main}; do
  if ! git rev-parse -q --verify "$t^{commit}" >/dev/null && [ -f bench/experiments/${t}_next.mbox ]; then
    # a candidate kept as an mbox (s66_next.mbox: section 93): branch $t = main with it applied
    WT=$(mktemp -d); git worktree add -f --detach "$WT" main >/dev/null
    (cd "$WT" && git am -q "$OLDPWD"/bench/experiments/${t}_next.mbox && git branch -f $t HEAD)
    git worktree remove --force "$WT"
  fi
  mkdir -p .devrun/trees/$t
  git archive $t | tar -x -C .devrun/trees/$t --exclude='bench/results' --exclude='bench/experiments'
done
du -sh .devrun
