import os, sys
sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
import torch, fusedlse_cuda
from problems import random_problems, make_random_inputs
problems = random_problems(); names = list(problems)
what, p = sys.argv[1].split(":")
args = make_random_inputs(problems[what], names.index(what))
for _ in range(3):
    fusedlse_cuda.forward(*args, padding=int(p))
torch.cuda.synchronize()
