"""The examples run: the KernelBench-style file loads like the harness loads it, and the training example trains."""
import importlib.util
import pathlib
import subprocess
import sys

import pytest
import torch

from helpers import DEVICES, TOLERANCE, make_problem, rel_err

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_kernelbench_file_has_the_problem_and_the_harness_entry_points():
    problem = load("kernelbench_42")
    assert problem.get_init_inputs() == [64, 128, 3, (128, 1, 1)]
    assert (problem.batch_size, problem.in_channels, problem.height, problem.width) == (16, 64, 512, 512)
    torch.manual_seed(0)
    model = problem.Model(*problem.get_init_inputs())
    torch.manual_seed(0)
    model_new = problem.ModelNew(*problem.get_init_inputs())
    for key, value in model.state_dict().items():
        assert torch.equal(model_new.state_dict()[key], value), key


@pytest.mark.parametrize("device", DEVICES)
def test_kernelbench_models_agree_on_a_smaller_problem(device, monkeypatch):
    problem = load("kernelbench_42")
    monkeypatch.setattr(problem, "batch_size", 2)
    monkeypatch.setattr(problem, "height", 20)
    monkeypatch.setattr(problem, "width", 21)
    (x,) = problem.get_inputs()
    assert x.shape == (2, 64, 20, 21)
    x = make_problem(2, 64, 20, 21, 1, 1, 1, device=device)[0]  # harness-shaped, but x that matters
    torch.manual_seed(0)
    model = problem.Model(*problem.get_init_inputs()).to(device)
    torch.manual_seed(0)
    model_new = problem.ModelNew(*problem.get_init_inputs()).to(device)
    with torch.no_grad():
        assert rel_err(model_new(x), model(x)) <= TOLERANCE[torch.float32]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("device", DEVICES)
def test_training_example_keeps_both_models_equal(device, dtype):
    done = subprocess.run([sys.executable, str(EXAMPLES / "train.py"), "--device", device, "--dtype", dtype],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "largest relative difference" in done.stdout
