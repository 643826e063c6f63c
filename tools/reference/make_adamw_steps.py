"""torch.optim.AdamW steps on given gradients, for reptok's bit-for-bit AdamW test.

The optimizer alone, with no model in between whose matmuls could round differently: three parameters (lengths
that exercise the vector loops and their tails), six steps, each on a stored gradient, for the plain update, for
amsgrad and for maximize. Stores the parameters and both moment buffers after the last step. ATen picks its CPU
kernels by capability (AVX2 kernels use fused multiply-adds); the capability in use is stored in the metadata.
Writes test/data/adamw-steps.safetensors.

Run with Debian's PyTorch:  /usr/bin/python3 tools/reference/make_adamw_steps.py
"""
import os
import re
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from safetensors_io import save  # noqa: E402

torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "test", "data", "adamw-steps.safetensors")
STEPS = 6
SHAPES = {"a": (37, 29), "b": (61,), "c": (5,)}
RUNS = {
    "plain": dict(lr=1e-2, weight_decay=0.1),
    "amsgrad": dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05, amsgrad=True),
    "maximize": dict(lr=1e-3, weight_decay=0.0, maximize=True),
}

torch.manual_seed(0)
out = {}
for k, shape in SHAPES.items():
    out[f"init.{k}"] = torch.randn(shape)
    out[f"grads.{k}"] = torch.randn(STEPS, *shape) * torch.logspace(-3, 1, STEPS).reshape(-1, *[1] * len(shape))
for run, opts in RUNS.items():
    params = {k: out[f"init.{k}"].clone().requires_grad_() for k in SHAPES}
    opt = torch.optim.AdamW(params.values(), foreach=False, **opts)
    for i in range(STEPS):
        for k, p in params.items():
            p.grad = out[f"grads.{k}"][i].clone()
        opt.step()
    for k, p in params.items():
        out[f"{run}.param.{k}"] = p.detach().clone()
        out[f"{run}.exp_avg.{k}"] = opt.state[p]["exp_avg"].clone()
        out[f"{run}.exp_avg_sq.{k}"] = opt.state[p]["exp_avg_sq"].clone()

capability = re.search(r"CPU capability usage: (\w+)", torch.__config__.show())
meta = {"steps": STEPS, "torch": torch.__version__, "cpu_capability": capability.group(1) if capability else "unknown"}
save(OUT, out, meta)
print("wrote", os.path.normpath(OUT), meta)
