#!/bin/bash
# Nsight Compute of r59's narrow epilogue summing x's planes itself against the plane-lanes reader and the narrow
# epilogue after it (docs/limits.md section 95), tree .devrun/trees/$TREE (s67 unless set), built for sm_90.
export CUDA_HOME=/usr/local/cuda MAX_JOBS=16 TORCH_CUDA_ARCH_LIST=9.0
W=${TREE:-s67}; nvidia-smi --query-gpu=name --format=csv,noheader; T0=$(date +%s); ROOT=$(pwd)
cd .devrun/trees/$W
python3 setup.py build_ext --inplace > $OUT/build.log 2>&1; echo "build rc=$? $(( $(date +%s) - T0 ))s"
for mode in in_place reader; do
  PYTHONPATH=python:. timeout 150 ncu --clock-control none -k regex:"narrow|plane_lanes" -c 4 \
    --section SpeedOfLight --section Occupancy --section LaunchStats --section MemoryWorkloadAnalysis \
    --section WarpStateStats python3 $ROOT/.devrun/narrow_ncu.py $mode > $OUT/ncu_$mode.txt 2>&1
  KEYS="^  [a-z_]+.*\(|Duration|DRAM Throughput|Registers Per|Achieved Occupancy|Theoretical Occ|Grid Size"
  KEYS="$KEYS|Block Limit|Stall Long|Warp Cycles Per Issued|L1/TEX Hit|Mem Busy|Max Bandwidth"
  grep -E "$KEYS" $OUT/ncu_$mode.txt | head -40
done
echo "all done $(( $(date +%s) - T0 ))s"
