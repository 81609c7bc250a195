# Two commands set up a fresh machine and do the work (README.md):
#   make run    install what is missing, build if anything changed, then run the fused op against the reference
#               and its rivals on the headline problem (bench/headline.py)
#   make test   the same install and build, then the test suite (CI: .ci/run)
# On a GPU machine that already has torch: make gpu-test (all tests, GPU ones included), make stress-test and
# make bench.
PYTHON ?= python3
TORCH_VERSION ?= 2.14.1
# Extra pytest arguments for test and gpu-test, e.g. PYTEST_ARGS="-n 15" where pytest-xdist is installed (each
# worker then takes its share of torch's CPU threads: tests/conftest.py).
PYTEST_ARGS ?=
# What setup.py builds for when TORCH_CUDA_ARCH_LIST is unset: RTX 4090 (sm_89) and H100 (sm_90) SASS, plus PTX.
GPU_ARCHS := 8.9;9.0+PTX
# /usr/local/bin/nvcc is a wrapper that makes torch guess CUDA_HOME=/usr/local; point it at the toolkit itself.
ifneq ($(wildcard /usr/local/cuda/include/cuda_runtime.h),)
export CUDA_HOME ?= /usr/local/cuda
endif

# The build is `pip install -e .`, compiled by ninja in build/temp-*/ (kept, so only changed sources recompile).
# It runs only when something it depends on changed since the last successful build, whose settings
# build/module.stamp holds: a file under csrc/ (edited, added or removed), setup.py, pyproject.toml, the Python and
# torch it builds against, where fusedlse_cuda is installed from, FUSEDLSE_CPU_ONLY, FUSEDLSE_CUDA,
# TORCH_CUDA_ARCH_LIST (unset counts as $(GPU_ARCHS)), CUDA_HOME, or the compiled module itself (missing, or
# rebuilt by a direct pip install). Looking takes well under a second and imports no torch.
STAMP := build/module.stamp
PROBE := import importlib.util as u, os, re, sys; \
	t = u.find_spec("torch"); f = u.find_spec("fusedlse_cuda"); \
	v = t and re.search(r"__version__ = .(\S+).", open(os.path.join(os.path.dirname(t.origin), "version.py")).read()); \
	print("python=" + sys.executable, "torch=" + (v.group(1) if v else "none"), "installed=" + (f.origin if f else "none"))
SETTINGS = echo "$$($(PYTHON) -c '$(PROBE)') cpu_only=$${FUSEDLSE_CPU_ONLY:-} require_cuda=$${FUSEDLSE_CUDA:-}" \
	"archs=$${TORCH_CUDA_ARCH_LIST:-$(GPU_ARCHS)} cuda_home=$${CUDA_HOME:-}" \
	"sources=$$(find csrc -type f | sort | cksum | cut -d' ' -f1)" \
	"module=$$(find python/fusedlse_cuda -name '_C*.so' -printf '%T@,%s')"
BENCH_RUN := build/bench-run.json

.PHONY: deps install module run test gpu-test stress-test bench report clean

deps:  # what a fresh machine lacks, from pip only; when nothing is missing this imports nothing and downloads nothing
	@$(PYTHON) -c 'import importlib.util as u, sys; sys.exit(u.find_spec("torch") is None)' \
		|| $(PYTHON) -m pip install "torch==$(TORCH_VERSION)"
	@$(PYTHON) -c 'import importlib.metadata as m, importlib.util as u, sys; \
		names = ("setuptools", "ninja", "wheel", "pytest", "pytest_benchmark", "numpy", "matplotlib"); \
		missing = [n for n in names if u.find_spec(n) is None]; \
		sys.exit(bool(missing) or int(m.version("setuptools").split(".")[0]) < 64)' \
		|| $(PYTHON) -m pip install -q ninja "setuptools>=64" wheel pytest pytest-benchmark numpy matplotlib

install: deps module

module:  # the compiled extension, rebuilt only when one of its inputs changed (see STAMP above)
	@settings="$$($(SETTINGS))"; \
	if [ -f $(STAMP) ] && [ "$$(cat $(STAMP))" = "$$settings" ] \
		&& [ -z "$$(find csrc setup.py pyproject.toml -newer $(STAMP) -print -quit)" ]; then \
		echo "fusedlse_cuda is up to date: no source or build setting changed since its last build ($(STAMP))"; \
	else \
		mkdir -p build && touch build/module.start \
		&& $(PYTHON) -m pip install --no-build-isolation --no-deps -e . \
		&& $(SETTINGS) > $(STAMP) && touch -r build/module.start $(STAMP); \
	fi

run: install
	$(PYTHON) bench/headline.py

test: install
	$(PYTHON) -m pytest tests bench/test_problems.py $(PYTEST_ARGS)

# Nothing is downloaded: the device machine has torch, triton and pytest but no network.
gpu-test: export TORCH_CUDA_ARCH_LIST = $(GPU_ARCHS)
gpu-test: module
	$(PYTHON) -m pytest tests bench/test_problems.py $(PYTEST_ARGS)

# The long tests (GPU): compute-sanitizer's four tools over every launch plan, DistributedDataParallel on two GPUs.
stress-test: export TORCH_CUDA_ARCH_LIST = $(GPU_ARCHS)
stress-test: module
	FUSEDLSE_STRESS=1 $(PYTHON) -m pytest tests -m stress

# The A/B suite (needs a GPU; skips without one). The run's rows go to bench/results/<device>/latest.{json,md,png}
# (replacing that device's previous run) and are appended to bench/results/history.csv.
bench: module
	@rm -f $(BENCH_RUN)
	$(PYTHON) -m pytest bench -q --benchmark-json=$(BENCH_RUN) --benchmark-columns=median,rounds
	$(PYTHON) bench/report.py --record $(BENCH_RUN)

report:  # re-render every device's table and plot from its latest.json
	$(PYTHON) bench/report.py bench/results/*/latest.json

clean:
	rm -rf build python/fusedlse_cuda/_C*.so
