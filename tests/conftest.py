import os

import torch

# Without a GPU the Triton seed runs on CPU tensors through Triton's interpreter; this must be set before any
# @triton.jit function is defined, i.e. before triton_ref is imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
