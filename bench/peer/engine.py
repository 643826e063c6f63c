"""PyTorch side of `npm run bench:engine`: GEMM throughput and a transformer block training step."""
import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import serve, time_median


class Block(nn.Module):
    # The same pre-norm transformer block as bench/engine.ts (attention written with matmul/softmax).
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        attn = ((q * (1 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1)).softmax(-1)
        x = x + self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


def gemm(n, iters, warmup=0):
    x, y = torch.randn(n, n), torch.randn(n, n)
    return {"bench": "gemm", "n": n, "seconds": time_median(lambda: x @ y, iters, warmup)}


def linear(m, k, n, bf16, iters, warmup=0):
    """A linear layer's forward + backward (gx, gw, gb), float32 or under bf16 autocast."""
    x = torch.randn(m, k, requires_grad=True)
    lin = nn.Linear(k, n)
    gy = torch.randn(m, n)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = lin(x)
        y.backward(gy.to(y.dtype))

    return {"bench": "linear", "seconds": time_median(step, iters, warmup)}


state = {}


def block_step(iters, warmup=0):
    if not state:
        torch.manual_seed(0)
        blk = Block(384, 6)
        state.update(blk=blk, opt=torch.optim.AdamW(blk.parameters(), lr=1e-4), x=torch.randn(16, 64, 384), y=torch.randn(16, 64, 384))

    def step():
        loss = F.mse_loss(state["blk"](state["x"]), state["y"])
        state["opt"].zero_grad()
        loss.backward()
        state["opt"].step()

    return {"bench": "block_step", "batch": 16, "tokens": 64, "width": 384, "heads": 6, "seconds": time_median(step, iters, warmup)}


ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
serve(ap.parse_args().threads, {"gemm": gemm, "linear": linear, "block_step": block_step})
