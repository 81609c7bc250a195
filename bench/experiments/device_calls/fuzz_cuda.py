"""A random sweep of fusedlse's CUDA forward, and a sample of its gradients, against float64 truths (docs/limits.md
section 97: the CPU sweeps of this kind found three bugs the suite's named and seeded cases had passed).

Shapes are drawn log-uniformly, so that the planner's readers and epilogues all come up. The sweep covers:
- every dtype;
- x in helpers.LAYOUTS and helpers.STRIDED_VIEWS;
- every setting (stride, padding, output_padding, dilation, groups);
- biases of every shape the op takes, with and without conv_bias.

The truth is the real model in float64 on the CPU where its convolution is small, else reference.tap_shortcut in
float64 on the GPU. Without a GPU the sweep runs the CPU backend on the CPU, with smaller x. Gradients are compared
on a tenth of the small float64 cases. Failures go to OUT as JSON lines; the summary counts the cases and the plans
they took (explain()).

    PYTHONPATH=python:.:tests python3 fuzz_cuda.py OUT.jsonl [SECONDS=120] [SEED=0]
"""
import collections
import json
import math
import random
import sys
import time

import torch

import fusedlse_cuda
from fusedlse_cuda import reference
from helpers import LAYOUTS, STRIDED_VIEWS, TOLERANCE, lay_out, rel_err, strided_view

# The GPU's forward; without one, the CPU backend's (the same sweep, smaller x: a check of the script, and of that
# backend).
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
MAX_X_BYTES = (64 << 20) if DEVICE == "cuda" else (4 << 20)
SMALL_CONV_MACS = 2e8  # the real model on the CPU below this many multiply-adds, else the shortcut on the GPU


def log_int(rng, low, high):
    return int(round(math.exp(rng.uniform(math.log(low), math.log(high)))))


def draw(rng):
    """One case: (sizes, dtype, layout, settings, bias kinds), or None where nn.ConvTranspose2d would refuse it."""
    dtype = rng.choice([torch.float32, torch.float16, torch.bfloat16, torch.float64])
    groups = rng.choice([1, 1, 1, 2, 3])
    c_in, c_out = groups * log_int(rng, 1, 512 // groups), groups * log_int(rng, 1, 2048 // groups)
    height, width = log_int(rng, 1, 512), log_int(rng, 1, 512)
    batch = log_int(rng, 1, 100000)
    element = torch.finfo(dtype).bits // 8
    batch = max(1, min(batch, MAX_X_BYTES // (c_in * height * width * element)))
    if c_in * height * width * element > MAX_X_BYTES:
        return None
    kernel = (rng.randint(1, 5), rng.randint(1, 5))
    padded = rng.random() < 0.4
    stride, dilation = (rng.randint(1, 3), rng.randint(1, 3)), (rng.choice([1, 1, 2]), rng.choice([1, 1, 2]))
    settings = dict(stride=stride, dilation=dilation, groups=groups,
                    padding=(rng.randint(0, 3), rng.randint(0, 3)) if padded else (0, 0),
                    output_padding=tuple(rng.randint(0, max(s, d) - 1) for s, d in zip(stride, dilation)))
    out_h = (height - 1) * stride[0] + dilation[0] * (kernel[0] - 1) + settings["output_padding"][0] + 1
    out_w = (width - 1) * stride[1] + dilation[1] * (kernel[1] - 1) + settings["output_padding"][1] + 1
    if out_h - 2 * settings["padding"][0] < 1 or out_w - 2 * settings["padding"][1] < 1:
        return None
    layout = rng.choice(LAYOUTS + LAYOUTS + STRIDED_VIEWS)
    bias_shape = rng.choice([(c_out, 1, 1), (1, c_out, 1, 1), (), (1,)])
    return dict(sizes=(batch, c_in, height, width, c_out) + kernel, dtype=dtype, layout=layout, settings=settings,
                bias_shape=bias_shape, conv_bias=rng.random() < 0.7)


def inputs(case, seed):
    batch, c_in, height, width, c_out, kh, kw = case["sizes"]
    dtype, groups = case["dtype"], case["settings"]["groups"]
    g = torch.Generator(device=DEVICE).manual_seed(seed)
    wide = torch.float64 if dtype == torch.float64 else torch.float32
    x = (torch.randn(batch, c_in, height, width, generator=g, device=DEVICE, dtype=wide)
         * (torch.rand(batch, c_in, 1, 1, generator=g, device=DEVICE, dtype=wide) * 2 + 0.1)
         + torch.randn(batch, c_in, 1, 1, generator=g, device=DEVICE, dtype=wide) * 2).to(dtype)
    x = strided_view(x, case["layout"]) if case["layout"] in STRIDED_VIEWS else lay_out(x, case["layout"])
    scale = 3 / math.sqrt(c_in // groups * kh * kw)
    weight = (torch.randn(c_in, c_out // groups, kh, kw, generator=g, device=DEVICE, dtype=wide) * scale).to(dtype)
    conv_bias = torch.randn(c_out, generator=g, device=DEVICE, dtype=wide).to(dtype) if case["conv_bias"] else None
    bias = torch.randn(case["bias_shape"], generator=g, device=DEVICE, dtype=wide).to(dtype)
    return x, weight, conv_bias, bias


def truth(case, x, weight, conv_bias, bias):
    batch, c_in, height, width, c_out, kh, kw = case["sizes"]
    s = case["settings"]
    macs = batch * c_in * height * width * (c_out // s["groups"]) * kh * kw
    if macs <= SMALL_CONV_MACS:
        return reference.truth(x, weight, conv_bias, bias, **s), "model"
    f64 = lambda t: None if t is None else t.to(torch.float64)  # noqa: E731
    return reference.tap_shortcut(f64(x), f64(weight), f64(conv_bias), f64(bias), **s), "tap_shortcut"


def plan_name(x, weight, settings):
    plan = fusedlse_cuda.explain(x, weight, **settings)
    if plan["strategy"] != "split" and plan["strategy"] != "fused":  # "cropped" (padding), or "cpu"
        return plan["strategy"] + ("/" + str(plan.get("tap_sums")) if "tap_sums" in plan else "")
    return "/".join([plan["strategy"], plan["reader"]] + ([plan["epilogue"]] if plan["strategy"] == "split" else []))


def gradients_agree(case, x, weight, conv_bias, bias):
    """Gradients of the float64 forward against autograd through the real model (both on x's device)."""
    s = case["settings"]
    leaves = [t.detach().clone().requires_grad_() for t in (x, weight, bias)]
    ours = torch.autograd.grad(fusedlse_cuda.forward(leaves[0], leaves[1], conv_bias, leaves[2], **s).sum(), leaves)
    model_leaves = [t.detach().clone().requires_grad_() for t in (x, weight, bias)]
    want = torch.autograd.grad(reference.model_forward(model_leaves[0], model_leaves[1], conv_bias, model_leaves[2],
                                                       **s).sum(), model_leaves)
    return max(rel_err(a, b) for a, b in zip(ours, want))


def main(out_path, seconds=120.0, seed=0):
    rng = random.Random(seed)
    start, cases, failures = time.time(), 0, 0
    plans, truths = collections.Counter(), collections.Counter()
    with open(out_path, "w") as out:
        while time.time() - start < seconds:
            case = draw(rng)
            if case is None:
                continue
            cases += 1
            record = dict(case, dtype=str(case["dtype"]), index=cases)
            try:
                x, weight, conv_bias, bias = inputs(case, seed * 1000003 + cases)
                plans[plan_name(x, weight, case["settings"])] += 1
                got = fusedlse_cuda.forward(x, weight, conv_bias, bias, **case["settings"])
                want, kind = truth(case, x, weight, conv_bias, bias)
                truths[kind] += 1
                record.update(err=rel_err(got, want), truth=kind)
                bad = not record["err"] <= TOLERANCE[case["dtype"]]
                if (case["dtype"] == torch.float64 and kind == "model" and rng.random() < 0.1
                        and x.numel() < (1 << 20)):
                    record["grad_err"] = gradients_agree(case, x, weight, conv_bias, bias)
                    bad = bad or not record["grad_err"] <= 1e-9
            except Exception as error:  # a refusal of a case nn.ConvTranspose2d accepts is a failure too
                record["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
                bad = True
            if bad:
                failures += 1
                out.write(json.dumps(record) + "\n")
                out.flush()
                print("FAIL", json.dumps(record)[:400], flush=True)
            x = weight = conv_bias = bias = got = want = None
    print(f"{cases} cases, {failures} failures, {time.time() - start:.0f} s; truths {dict(truths)}")
    for name, count in plans.most_common():
        print(f"  {count:5d}  {name}")


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 120.0, int(sys.argv[3]) if len(sys.argv) > 3 else 0)
