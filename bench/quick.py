"""Fast look at the sweep (no pytest-benchmark): fusedlse CUDA, the tuned Triton rival and the seed against torch's
x.sum(dim=(2,3)).

python bench/quick.py [shape ...]   -- prints median ms, GB/s and bw_frac per shape; for tuning runs.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fusedlse_cuda  # noqa: E402
from problems import PROVIDERS, SWEEP, make_inputs, require_cuda  # noqa: E402
from timing import back_to_back_us, graph_replay_us, median_ms  # noqa: E402


def main(names):
    require_cuda("bench/quick.py")
    x = make_inputs("headline")[0]
    ceiling = x.numel() * x.element_size() / median_ms(lambda: x.sum(dim=(2, 3))) / 1e6
    del x
    print(f"{torch.cuda.get_device_name()}  ceiling (torch x.sum, headline fp32): {ceiling:.0f} GB/s")
    print(f"{'shape':18s} {'MiB':>7s} {'sum ms':>8s} {'cuda ms':>8s} {'tuned ms':>8s} {'seed ms':>8s} "
          f"{'cuda GB/s':>9s} {'bw_frac':>7s} {'tuned bw':>8s} {'vs sum':>6s}")
    seed = PROVIDERS["triton_seed"]()
    tuned = PROVIDERS["triton_tuned"]()
    for name in names:
        args = make_inputs(name)
        x = args[0]
        nbytes = x.numel() * x.element_size()
        sum_ms = median_ms(lambda: x.sum(dim=(2, 3)))
        cuda_ms = median_ms(lambda: fusedlse_cuda.forward(*args))
        tuned_ms = median_ms(lambda: tuned(*args))
        seed_ms = median_ms(lambda: seed(*args))
        gbps = nbytes / cuda_ms / 1e6
        print(f"{name:18s} {nbytes / 2**20:7.1f} {sum_ms:8.4f} {cuda_ms:8.4f} {tuned_ms:8.4f} {seed_ms:8.4f} "
              f"{gbps:9.0f} {gbps / ceiling:7.3f} {nbytes / tuned_ms / 1e6 / ceiling:8.3f} {sum_ms / cuda_ms:6.2f}",
              flush=True)
        if name == "kb_old":
            # issue 14's kb_old targets: graph replay, and eager calls back to back against torch's sum called so
            call = lambda: fusedlse_cuda.forward(*args)  # noqa: E731
            torch_sum = lambda: x.sum(dim=(2, 3))  # noqa: E731
            print(f"   kb_old: back-to-back eager {back_to_back_us(call):.2f} us/call, "
                  f"graph replay {graph_replay_us(call):.2f} us/call; torch's x.sum(dim=(2,3)) "
                  f"{back_to_back_us(torch_sum):.2f} and {graph_replay_us(torch_sum):.2f}; tuned eager "
                  f"{back_to_back_us(lambda: tuned(*args)):.2f} us/call; seed eager "
                  f"{back_to_back_us(lambda: seed(*args)):.2f} us/call")
        del args, x
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main(sys.argv[1:] or list(SWEEP))
