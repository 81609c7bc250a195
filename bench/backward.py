"""The backward's cost: fusedlse's training step against the reference model's, and grad_x's write speed.

    python bench/backward.py

grad_x is the same value across H*W of each (b, c_in) row; fusedlse writes it once in x's layout with its
broadcast_hw kernel. Its ceiling is torch's own fill of a tensor of x's size (a pure write), measured in the same run.
The whole backward also runs a few small kernels (the [B, C_out] softmax and GEMMs) and Python autograd code.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fusedlse_cuda  # noqa: E402
from fusedlse_cuda import reference  # noqa: E402
from problems import make_inputs, require_cuda  # noqa: E402
from timing import median_ms  # noqa: E402


def main():
    require_cuda("bench/backward.py")
    print(torch.cuda.get_device_name())
    for name in ("headline", "headline_nhwc", "headline_bf16"):
        x, weight, conv_bias, bias = make_inputs(name)
        nbytes = x.numel() * x.element_size()
        params = [t.requires_grad_() for t in (weight, conv_bias, bias)]
        x.requires_grad_()
        fill_ms = median_ms(lambda: torch.empty_like(x).fill_(1.0))
        rows = torch.randn(x.shape[0], x.shape[1], device=x.device, dtype=fusedlse_cuda.ops.accumulation_dtype(x.dtype))
        layout = torch.channels_last if name.endswith("nhwc") else torch.contiguous_format
        write_ms = median_ms(lambda: fusedlse_cuda.broadcast_hw(rows, x.shape[2], x.shape[3], x.dtype, layout))
        out = fusedlse_cuda.forward(x, *params)
        grad_out = torch.ones_like(out)
        backward_ms = median_ms(lambda: torch.autograd.grad(out, [x, *params], grad_out, retain_graph=True))
        step_ms = median_ms(lambda: torch.autograd.grad(fusedlse_cuda.forward(x, *params), [x, *params], grad_out))
        line = (f"{name:14s} x {nbytes / 2**20:.0f} MiB: fill (write ceiling) {fill_ms:.3f} ms = "
                f"{nbytes / fill_ms / 1e6:.0f} GB/s; broadcast_hw (grad_x's write) {write_ms:.3f} ms = "
                f"{nbytes / write_ms / 1e6:.0f} GB/s ({fill_ms / write_ms:.2f} of the fill); backward {backward_ms:.3f} ms = {nbytes / backward_ms / 1e6:.0f} "
                f"GB/s of grad_x ({fill_ms / backward_ms:.2f} of the fill); forward+backward {step_ms:.3f} ms")
        if name == "headline":
            ref_ms = median_ms(lambda: torch.autograd.grad(reference.model_forward(x, *params), [x, *params],
                                                           grad_out), rep_ms=500)
            line += f"; reference model forward+backward {ref_ms:.2f} ms"
        print(line, flush=True)
        del x, weight, conv_bias, bias, params, out
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
