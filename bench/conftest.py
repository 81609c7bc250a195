import functools

import pytest
import torch

from problems import SWEEP, make_inputs
from timing import median_ms


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="benchmarks need a CUDA GPU")
        for item in items:
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
