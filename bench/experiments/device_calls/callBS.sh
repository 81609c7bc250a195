#!/bin/bash
# The committed H200 sweep of main in one call (docs/limits.md section 101): main's tree (make_trees.sh) built for
# $ARCHS (default 9.0; build_module.sh), then callS.sh with TREE=main and REV=$REV (main's commit). About 420 s on an
# H200 after its start.
W=main; (source .devrun/build_module.sh); TREE=main bash .devrun/callS.sh
