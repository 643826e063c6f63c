"""PyTorch side of `npm run bench:dinov2`: forward throughput of the official DINOv2 architecture (ViT-S/14 and
ViT-B/14 with registers, random weights), written here with PyTorch 1.13's matmul attention (no fused kernel)."""
import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import serve, time_median


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.ls1, self.ls2 = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.ones(dim))

    def attn(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        a = ((q * (1 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1)).softmax(-1)
        return self.proj((a @ v).transpose(1, 2).reshape(B, N, C))

    def forward(self, x):
        x = x + self.ls1 * self.attn(self.norm1(x))
        return x + self.ls2 * self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    def __init__(self, dim, depth, heads, regs=4, patch=14, grid=37):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, grid * grid + 1, dim) * 0.02)
        self.register_tokens = nn.Parameter(torch.zeros(1, regs, dim))
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.grid = grid

    def forward(self, x):
        B, _, H, W = x.shape
        t = self.patch_embed(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls_token.expand(B, -1, -1), t], 1)
        pos = self.pos_embed[:, 1:].reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        pos = F.interpolate(pos, size=(H // 14, W // 14), mode="bicubic", antialias=True).permute(0, 2, 3, 1).flatten(1, 2)
        t = t + torch.cat([self.pos_embed[:, :1], pos], 1)
        t = torch.cat([t[:, :1], self.register_tokens.expand(B, -1, -1), t[:, 1:]], 1)
        for b in self.blocks:
            t = b(t)
        return self.norm(t)[:, 0]


MODELS = {"vits14_reg": (384, 12, 6), "vitb14_reg": (768, 12, 12)}
built = {}


def forward(model, batch, size, iters, warmup=0):
    if model not in built:
        torch.manual_seed(0)
        built[model] = ViT(*MODELS[model]).eval()
    x = torch.randn(batch, 3, size, size)
    with torch.no_grad():
        s = time_median(lambda: built[model](x), iters, warmup)
    return {"bench": "dinov2_forward", "model": model, "batch": batch, "size": size, "seconds": s}


ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
serve(ap.parse_args().threads, {"forward": forward})
