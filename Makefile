# Two commands set up a fresh machine and do the work (README.md):
#   make run    build everything, then run the fused op against the reference and its rivals on the headline problem
#   make test   build everything, then run the test suite (CI: .ci/run)
# On a GPU machine that already has torch: make gpu-test (all tests, GPU ones included) and make bench.
PYTHON ?= python3
TORCH_VERSION ?= 2.14.1
# /usr/local/bin/nvcc is a wrapper that makes torch guess CUDA_HOME=/usr/local; point it at the toolkit itself.
ifneq ($(wildcard /usr/local/cuda/include/cuda_runtime.h),)
export CUDA_HOME ?= /usr/local/cuda
endif
BENCH_JSON ?= bench/results/latest.json

.PHONY: deps install run test gpu-test bench report

deps:  # what a fresh machine lacks, from pip only
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install "torch==$(TORCH_VERSION)"
	$(PYTHON) -m pip install -q ninja "setuptools>=64" wheel pytest pytest-benchmark numpy matplotlib

install: deps
	$(PYTHON) -m pip install --no-build-isolation --no-deps -e .

run: install
	$(PYTHON) bench/headline.py

test: install
	$(PYTHON) -m pytest tests

# Nothing is downloaded: the device machine has torch, triton and pytest but no network.
gpu-test:
	TORCH_CUDA_ARCH_LIST="8.9;9.0+PTX" $(PYTHON) -m pip install -q --no-build-isolation --no-deps -e .
	$(PYTHON) -m pytest tests

bench:
	$(PYTHON) -m pytest bench -q --benchmark-json=$(BENCH_JSON) --benchmark-columns=median,rounds

report:
	$(PYTHON) bench/report.py $(BENCH_JSON)
