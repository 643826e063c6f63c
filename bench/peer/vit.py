"""The DINOv2 architecture (with registers) as the PyTorch peers run it: matmul attention (PyTorch 1.13 has no
fused kernel), LayerScale, GELU MLP, bicubic antialiased position-embedding resize."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import LayerNorm


def sdpa(q, k, v, scale=None):
    s = q.shape[-1] ** -0.5 if scale is None else scale
    return torch.softmax((q @ k.transpose(-2, -1)) * s, dim=-1) @ v


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = LayerNorm(dim, eps=1e-6), LayerNorm(dim, eps=1e-6)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.ls1, self.ls2 = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.ones(dim))

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        x = x + self.ls1 * self.proj(sdpa(q, k, v).transpose(1, 2).reshape(B, N, C))
        return x + self.ls2 * self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    def __init__(self, dim=384, depth=12, heads=6, regs=4, patch=14, grid=37):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 1e-6)
        self.pos_embed = nn.Parameter(torch.randn(1, grid * grid + 1, dim) * 0.02)
        self.register_tokens = nn.Parameter(torch.randn(1, regs, dim) * 1e-6)
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(depth)])
        self.norm = LayerNorm(dim, eps=1e-6)
        self.grid, self.patch = grid, patch

    def forward(self, x):
        B, _, H, W = x.shape
        t = self.patch_embed(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls_token.expand(B, -1, -1), t], 1)
        pos = self.pos_embed[:, 1:].float().reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        pos = F.interpolate(pos, size=(H // self.patch, W // self.patch), mode="bicubic", antialias=True).permute(0, 2, 3, 1).reshape(1, -1, t.shape[-1])
        t = t + torch.cat([self.pos_embed[:, :1], pos], 1)
        t = torch.cat([t[:, :1], self.register_tokens.expand(B, -1, -1), t[:, 1:]], 1)
        for b in self.blocks:
            t = b(t)
        return self.norm(t)[:, 0]
