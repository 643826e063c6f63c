"""Reference trajectories of torch.optim for reptok's optimizer parity tests.

A small MLP (Linear 6->16, GELU, Linear 16->3) starts from a fixed state and trains 20 steps on fixed batches;
the parameters after the last step are stored for AdamW (with and without amsgrad, with parameter groups), SGD
with momentum/Nesterov, and for gradient-norm clipping. Writes test/data/optim.safetensors.

Run with Debian's PyTorch:  /usr/bin/python3 tools/reference/make_optim_cases.py
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from safetensors_io import save  # noqa: E402

torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "test", "data", "optim.safetensors")
STEPS = 20


def mlp():
    return nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.Linear(16, 3))


torch.manual_seed(0)
init = {k: v.clone() for k, v in mlp().state_dict().items()}
xs = torch.randn(STEPS, 8, 6)
ys = torch.randn(STEPS, 8, 3)


def run(make_opt, clip=None):
    model = mlp()
    model.load_state_dict(init)
    opt = make_opt(model)
    norms = []
    for i in range(STEPS):
        loss = F.mse_loss(model(xs[i]), ys[i])
        opt.zero_grad()
        loss.backward()
        if clip is not None:
            norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip)))
        opt.step()
    return model.state_dict(), norms


def groups(m):
    decay = [p for n, p in m.named_parameters() if n.endswith("weight")]
    no_decay = [p for n, p in m.named_parameters() if n.endswith("bias")]
    return [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0, "lr": 5e-3}]


CASES = {
    "adamw": lambda m: torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1),
    "adamw_amsgrad": lambda m: torch.optim.AdamW(m.parameters(), lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05, amsgrad=True),
    "adamw_groups": lambda m: torch.optim.AdamW(groups(m), lr=1e-2),
    "sgd_momentum": lambda m: torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3),
    "sgd_nesterov": lambda m: torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, nesterov=True),
    "adamw_clip": (lambda m: torch.optim.AdamW(m.parameters(), lr=1e-2), 0.5),
}

out = {f"init.{k}": v for k, v in init.items()}
out["xs"], out["ys"] = xs, ys
for name, spec in CASES.items():
    make, clip = spec if isinstance(spec, tuple) else (spec, None)
    sd, norms = run(make, clip)
    for k, v in sd.items():
        out[f"{name}.{k}"] = v
    if norms:
        out[f"{name}.grad_norms"] = torch.tensor(norms, dtype=torch.float64)
save(OUT, out, {"torch": torch.__version__, "steps": STEPS})
print(f"wrote {len(CASES)} optimizer trajectories to {os.path.normpath(OUT)}")
