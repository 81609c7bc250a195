"""Two GPUs: every op on cuda:1 while cuda:0 is current, both GPUs from two threads at once, and ModelNew trained
with DistributedDataParallel (NCCL, one process per GPU) against the same training on one GPU."""
import os
import subprocess
import sys
import threading

import pytest
import torch

import fusedlse_cuda
from fusedlse_cuda import reference
from helpers import HAS_CUDA, TOLERANCE, make_problem, rel_err

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not HAS_CUDA or torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")]

# Self-contained tiles; split rows with several unit groups (tickets); channels-last; whole short rows.
SHAPES = [((128, 3, 32, 32, 16, 3, 3), "contiguous"), ((2, 300, 40, 50, 64, 3, 3), "contiguous"),
          ((3, 96, 20, 20, 300, 3, 3), "channels_last"), ((6, 40, 17, 16, 33, 3, 3), "contiguous")]


@pytest.mark.parametrize("shape, layout", SHAPES, ids=[s[1] + str(s[0][:2]) for s in SHAPES])
def test_forward_and_backward_on_the_second_gpu(shape, layout):
    torch.cuda.set_device(0)
    problem = make_problem(*shape, device="cuda:1", layout=layout)
    leaves = [t.detach().requires_grad_() for t in problem]
    out = fusedlse_cuda.forward(*leaves)
    assert out.device == torch.device("cuda:1") and torch.cuda.current_device() == 0
    assert rel_err(out, reference.truth(*problem)) <= TOLERANCE[torch.float32]
    grads = torch.autograd.grad(out.sum(), leaves)
    cpu_leaves = [t.detach().cpu().double().requires_grad_() for t in problem]
    truths = torch.autograd.grad(reference.model_forward(*cpu_leaves).sum(), cpu_leaves)
    for got, want in zip(grads, truths):
        assert got.device == torch.device("cuda:1") and rel_err(got, want) <= 1e-4
    sums = fusedlse_cuda.sum_hw(problem[0])
    assert rel_err(sums, problem[0].double().sum((2, 3))) <= 1e-5
    # A graph captured on cuda:1's stream, replayed.
    with torch.cuda.device(1):
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            fusedlse_cuda.forward(*problem)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=stream):
                static = fusedlse_cuda.forward(*problem)
        graph.replay()
        torch.cuda.synchronize()
    assert rel_err(static, reference.truth(*problem)) <= TOLERANCE[torch.float32]


def test_tuned_triton_rival_on_the_second_gpu():
    tuned = pytest.importorskip("triton_ref.tuned")
    torch.cuda.set_device(0)
    problem = make_problem(2, 300, 40, 50, 64, 3, 3, device="cuda:1")
    assert rel_err(tuned.forward(*problem), reference.truth(*problem)) <= TOLERANCE[torch.float32]


def test_two_threads_on_two_gpus_at_once():
    problems = [make_problem(*SHAPES[i % 2][0], device=f"cuda:{i}", seed=i) for i in range(2)]
    truths = [reference.truth(*p) for p in problems]
    errors, failures = [[], []], []

    def work(i):
        try:
            with torch.cuda.device(i):
                outs = [fusedlse_cuda.forward(*problems[i]) for _ in range(100)]
                torch.cuda.synchronize()
            errors[i] = [rel_err(out, truths[i]) for out in outs]
        except Exception as e:  # noqa: BLE001  (reported below)
            failures.append(repr(e))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    assert all(len(e) == 100 and max(e) <= TOLERANCE[torch.float32] for e in errors)


@pytest.mark.stress
@pytest.mark.skipif(os.environ.get("FUSEDLSE_STRESS") != "1", reason="stress test: FUSEDLSE_STRESS=1")
def test_distributed_data_parallel_matches_one_gpu(tmp_path):
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    import ddp_worker

    out_path = tmp_path / "ddp_state.pt"
    env = dict(os.environ, NCCL_NVLS_ENABLE="0", TORCH_SYMM_MEM_DISABLE_MULTICAST="1", NVSHMEM_DISABLE_NVLS="1",
               PYTHONPATH=os.pathsep.join([here] + sys.path))
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           os.path.join(here, "ddp_worker.py"), str(out_path)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    distributed = torch.load(out_path)
    model = ddp_worker.new_model("cuda:0")
    optimizer = torch.optim.SGD(model.parameters(), lr=ddp_worker.LR)
    for x in ddp_worker.batches():
        loss = model(x.to("cuda:0")).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    start = ddp_worker.new_model("cpu").state_dict()
    for name, value in model.state_dict().items():
        assert not torch.equal(value.cpu(), start[name]), f"{name} did not train"
        assert rel_err(distributed[name], value) <= 1e-5, name
