"""One rank of test_multi_gpu.py's DistributedDataParallel run (started by torch.distributed.run, one process per
GPU): ModelNew trained on this rank's share of each global batch; rank 0 saves the final parameters."""
import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import fusedlse_cuda

# C_in, C_out, kernel, global batch, H, W, steps, learning rate: shared with the single-GPU run in the test.
C_IN, C_OUT, KERNEL, BATCH, HEIGHT, WIDTH, STEPS, LR = 8, 24, 3, 8, 20, 20, 6, 0.5


def batches(steps=STEPS):
    """The global batches, the same in every process: per-(b, c_in) offsets and scales, so the output depends on x."""
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        offsets = torch.randn(BATCH, C_IN, 1, 1, generator=g) * 2
        scales = torch.rand(BATCH, C_IN, 1, 1, generator=g) + 0.1
        yield offsets + scales * torch.randn(BATCH, C_IN, HEIGHT, WIDTH, generator=g)


def new_model(device):
    torch.manual_seed(0)
    return fusedlse_cuda.ModelNew(C_IN, C_OUT, KERNEL, (C_OUT, 1, 1)).to(device)


def main(out_path):
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    torch.cuda.set_device(device)
    model = new_model(device)
    ddp = DistributedDataParallel(model, device_ids=[device.index])
    optimizer = torch.optim.SGD(ddp.parameters(), lr=LR)
    share = BATCH // world
    for x in batches():
        loss = ddp(x[rank * share:(rank + 1) * share].to(device)).mean()  # DDP averages: the global batch's mean
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if rank == 0:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, out_path)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
