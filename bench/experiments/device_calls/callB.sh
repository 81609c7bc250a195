#!/bin/bash
# The whole GPU suite ("8.9;9.0+PTX" build, make gpu-test: suite.sh) in .devrun/trees/$TREE (main unless set).
export CUDA_HOME=/usr/local/cuda
W=${TREE:-main}; echo "tree $W"; nvidia-smi --query-gpu=name --format=csv,noheader
ROOT=$(pwd); cd .devrun/trees/$W && T0=$(date +%s)
source $ROOT/.devrun/suite.sh
