import functools
import pathlib

import pytest
import torch

from problems import SWEEP, make_inputs
from timing import median_ms


# Modules that run on CPU (checks of the sweep's own code); every other bench module times GPU work.
CPU_MODULES = {"test_problems.py"}
HERE = pathlib.Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    """Without a GPU, skip the benchmarks. The hook sees the whole session's items (`make test` collects tests/
    too): only this directory's are touched."""
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="benchmarks need a CUDA GPU")
        for item in items:
            if item.path.parent == HERE and item.path.name not in CPU_MODULES:
                item.add_marker(skip)


@functools.lru_cache(maxsize=4)
def _inputs(name):
    return make_inputs(name)


@pytest.fixture
def problem():
    return _inputs


@functools.lru_cache(maxsize=None)
def torch_sum_ms(name):
    """The ceiling for one problem: torch's own x.sum(dim=(2, 3)) on the same tensor, same run."""
    x = _inputs(name)[0]
    return median_ms(lambda: x.sum(dim=(2, 3)))


@pytest.fixture(scope="session")
def ceiling_gbps():
    """GB/s of torch's x.sum(dim=(2, 3)) on the contiguous 1 GiB headline float32 tensor, measured in this run."""
    x = _inputs("headline")[0]
    return x.numel() * x.element_size() / torch_sum_ms("headline") / 1e6


@pytest.fixture
def sum_ms():
    return torch_sum_ms
