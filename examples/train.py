"""A few optimiser steps on the reference Model and on ModelNew from the same seed: losses and parameters stay equal.

    python examples/train.py [--device cuda] [--steps 8] [--dtype float32|float64]

Exits with status 1 if the two runs drift apart by more than the dtype's tolerance.
"""
import argparse

import torch

import fusedlse_cuda
from fusedlse_cuda import ModelNew
from fusedlse_cuda.reference import Model


def train(model_class, args, device, dtype):
    torch.manual_seed(0)
    model = model_class(16, 32, 3, (32, 1, 1), stride=2).to(device, dtype)
    optimiser = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    data = torch.Generator().manual_seed(1)
    # Each (b, c_in) row gets its own offset and scale, so the loss depends on x, not only on its mean.
    x = torch.randn(8, 16, 1, 1, generator=data) + torch.rand(8, 16, 1, 1, generator=data) * torch.randn(
        8, 16, 24, 24, generator=data)
    target = torch.randn(8, 1, generator=data) * 5 + 40
    x, target = x.to(device, dtype), target.to(device, dtype)
    losses = []
    for _ in range(args.steps):
        loss = torch.nn.functional.mse_loss(model(x), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return losses, [p.detach() for p in model.parameters()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    gpu = torch.cuda.is_available() and fusedlse_cuda.cuda_backend_built()
    parser.add_argument("--device", default="cuda" if gpu else "cpu", help="cuda when there is a GPU and fusedlse_cuda "
                        "was built with its CUDA backend, else cpu")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args()
    if args.device.startswith("cuda") and not gpu:
        why = "no CUDA GPU found" if not torch.cuda.is_available() else "fusedlse_cuda was built without it"
        print(f"examples/train.py --device {args.device} needs a CUDA GPU and fusedlse's CUDA backend: {why}. "
              f"Without --device it runs on the CPU.")
        return
    dtype = getattr(torch, args.dtype)
    tolerance = 1e-4 if dtype == torch.float32 else 1e-10
    ref_losses, ref_params = train(Model, args, args.device, dtype)
    new_losses, new_params = train(ModelNew, args, args.device, dtype)
    print(f"{'step':>4} {'Model loss':>14} {'ModelNew loss':>14}")
    for step, (a, b) in enumerate(zip(ref_losses, new_losses)):
        print(f"{step:4d} {a:14.6f} {b:14.6f}")
    loss_drift = max(abs(a - b) / max(abs(a), 1.0) for a, b in zip(ref_losses, new_losses))
    param_drift = max(((p - q).abs().max() / p.abs().max()).item() for p, q in zip(ref_params, new_params))
    print(f"largest relative difference: losses {loss_drift:.2e}, parameters {param_drift:.2e} "
          f"(tolerance {tolerance:.0e}, {args.dtype} on {args.device})")
    if ref_losses[-1] >= ref_losses[0]:
        print("the loss did not go down: the example no longer trains anything")
        raise SystemExit(1)
    if max(loss_drift, param_drift) > tolerance:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
