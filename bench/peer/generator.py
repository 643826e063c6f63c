"""PyTorch side of `npm run bench:generator`: the paper-scale MLP-Mixer generator (token 768, dim 1152, depth 28,
expansions 3 and 4, 1000 classes) as the reference builds it (Conv1d token mixing, DiT time/label embedders),
training step (forward + backward + AdamW) and one guided sampling step, batch 64."""
import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import LayerNorm, precision, serve, time_median


class PreNormResidual(nn.Module):
    def __init__(self, dim, fn):
        super().__init__()
        self.fn, self.norm = fn, LayerNorm(dim)

    def forward(self, x):
        return self.fn(self.norm(x)) + x


def ff(dim, e, dense):
    return nn.Sequential(dense(dim, int(dim * e)), nn.GELU(), nn.Dropout(0.0), dense(int(dim * e), dim), nn.Dropout(0.0))


class Mixer(nn.Module):
    def __init__(self, C=768, dim=1152, depth=28, e=3, e_tok=4, classes=1000):
        super().__init__()
        conv = lambda i, o: nn.Conv1d(i, o, 1)
        self.mixer = nn.Sequential(nn.Linear(C, dim), *[nn.Sequential(PreNormResidual(dim, ff(3, e, conv)), PreNormResidual(dim, ff(dim, e_tok, nn.Linear))) for _ in range(depth)], LayerNorm(dim), nn.Linear(dim, C))
        self.pos_embed = nn.Parameter(torch.randn(1, 1, C))
        self.t_mlp = nn.Sequential(nn.Linear(256, C), nn.SiLU(), nn.Linear(C, C))
        self.labels = nn.Embedding(classes + 1, C)

    def forward(self, x, t, y):
        half = 128
        freqs = torch.exp(-math.log(10000) * torch.arange(0, half, dtype=torch.float32) / half)
        args = t[:, None].float() * freqs[None]
        temb = self.t_mlp(torch.cat([torch.cos(args), torch.sin(args)], -1))
        xs = torch.cat([x + self.pos_embed, self.labels(y).unsqueeze(1), temb.unsqueeze(1)], 1)
        return self.mixer(xs)[:, :1]


state = {}


def setup(batch):
    if not state:
        torch.manual_seed(0)
        m = Mixer()
        state.update(m=m, opt=torch.optim.AdamW(m.parameters(), lr=1e-4), x1=torch.randn(batch, 1, 768), y=torch.randint(0, 1000, (batch,)))
    return state


def train_step(batch, iters, warmup=0):
    s = setup(batch)
    m, opt, x1, y = s["m"], s["opt"], s["x1"], s["y"]

    def step():
        x0 = torch.randn_like(x1)
        t = torch.rand(batch)
        te = t.view(-1, 1, 1)
        y_drop = torch.where(torch.rand(batch) < 0.1, 1000, y)
        with autocast():
            loss = (m(te * x1 + (1 - te) * x0, t, y_drop).float() - (x1 - x0)).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return {"bench": "generator_train_step", "batch": batch, "seconds": time_median(step, iters, warmup)}


def sample_step(batch, iters, warmup=0):
    s = setup(batch)
    m, y = s["m"], s["y"]

    def step():
        with torch.no_grad(), autocast():
            x = torch.randn(batch, 1, 768)
            t = torch.full((batch,), 0.5)
            uc, c = m(torch.cat([x, x]), torch.cat([t, t]), torch.cat([torch.full_like(y, 1000), y])).chunk(2)
            return x + 0.02 * (uc + 1.5 * (c - uc))

    return {"bench": "generator_sample_step", "batch": batch, "seconds": time_median(step, iters, warmup)}


ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--bf16", action="store_true", help="forward passes under torch.autocast('cpu', dtype=torch.bfloat16)")
args = ap.parse_args()
autocast = precision(args.bf16)
serve(args.threads, {"train_step": train_step, "sample_step": sample_step})
