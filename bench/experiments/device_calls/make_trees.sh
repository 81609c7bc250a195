#!/bin/bash
# Source trees for the device calls: .devrun/trees/{main,s63,s65} (or $TREES) from main (HEAD, clean) and the
# series' mboxes: s59 = bench/experiments/s5[1-9]_next.mbox applied, then s60 to s65, each the one before plus its
# sNN_next.mbox. Branches s59-s65 are made (or moved) in this clone. Run in the repository root.
set -euo pipefail
ROOT=$(pwd); WT=$(mktemp -d)
git worktree add -f --detach "$WT" HEAD >/dev/null
(cd "$WT" && git am -q "$ROOT"/bench/experiments/s5[1-9]_next.mbox && git branch -f s59 HEAD &&
 git am -q "$ROOT"/bench/experiments/s60_next.mbox && git branch -f s60 HEAD &&
 git am -q "$ROOT"/bench/experiments/s61_next.mbox && git branch -f s61 HEAD &&
 git am -q "$ROOT"/bench/experiments/s62_next.mbox && git branch -f s62 HEAD &&
 git am -q "$ROOT"/bench/experiments/s63_next.mbox && git branch -f s63 HEAD &&
 git am -q "$ROOT"/bench/experiments/s64_next.mbox && git branch -f s64 HEAD &&
 git am -q "$ROOT"/bench/experiments/s65_next.mbox && git branch -f s65 HEAD)
git worktree remove --force "$WT"
rm -rf .devrun/trees && mkdir -p .devrun/trees
for t in ${TREES:-main s63 s65}; do
  mkdir -p .devrun/trees/$t
  git archive $t | tar -x -C .devrun/trees/$t --exclude='bench/results' --exclude='bench/experiments'
done
du -sh .devrun
