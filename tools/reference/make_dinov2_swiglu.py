"""A tiny random DINOv2 with the giant models' SwiGLU feed-forward, for reptok's parity and torch.save tests.

The model follows facebookresearch/dinov2's DinoVisionTransformer with ffn_layer="swiglufused" (what the torch-hub
ViT-g/14 uses) written out here in plain PyTorch: patch embedding, [cls] + position embedding, register tokens after
[cls], pre-norm blocks with LayerScale, and SwiGLUFFNFused, whose hidden width is int(dim * mlp_ratio) rounded as
(int(hidden * 2 / 3) + 7) // 8 * 8; w12 projects to twice that, its output is chunked in two halves x1, x2 along the
last dim, and w3 projects silu(x1) * x2 back. Width 40 with mlp_ratio 4 gives hidden 160 -> 112: the rounding is
not a no-op (the giant's 6144 -> 4096 is). Every parameter is random, LayerScale and the mask token included.
Inputs are at the model's own image size, so the position embedding is used as is.

Writes, in test/data/:
- dinov2-swiglu-tiny.safetensors: the state dict in the official key layout;
- dinov2-swiglu-tiny.pth: the same state dict saved by torch.save as an OrderedDict, as torch-hub checkpoints are;
- dinov2-swiglu-tiny.cases.safetensors: `pixel_values` and forward_features' outputs `x_norm_clstoken`,
  `x_norm_regtokens`, `x_norm_patchtokens`, `x_prenorm`; metadata holds the config and the tolerance.

Run with Debian's PyTorch:  /usr/bin/python3 tools/reference/make_dinov2_swiglu.py
"""
import collections
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from safetensors_io import save  # noqa: E402

torch.set_num_threads(1)
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test", "data")
CONFIG = dict(img_size=16, patch_size=4, in_chans=3, embed_dim=40, depth=2, num_heads=4, mlp_ratio=4.0,
              num_register_tokens=2, layer_norm_eps=1e-6)


class SwiGLUFFNFused(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        hidden = (int(hidden * 2 / 3) + 7) // 8 * 8
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x):
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(x1) * x2)


class LayerScale(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * self.gamma


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        dim = c["embed_dim"]
        self.norm1 = nn.LayerNorm(dim, eps=c["layer_norm_eps"])
        self.attn = Attention(dim, c["num_heads"])
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=c["layer_norm_eps"])
        self.mlp = SwiGLUFFNFused(dim, int(dim * c["mlp_ratio"]))
        self.ls2 = LayerScale(dim)

    def forward(self, x):
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.proj = nn.Conv2d(c["in_chans"], c["embed_dim"], c["patch_size"], stride=c["patch_size"])

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, N, D)


class DinoVisionTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        dim, n = c["embed_dim"], (c["img_size"] // c["patch_size"]) ** 2
        self.R = c["num_register_tokens"]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + n, dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, self.R, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.patch_embed = PatchEmbed(c)
        self.blocks = nn.ModuleList([Block(c) for _ in range(c["depth"])])
        self.norm = nn.LayerNorm(dim, eps=c["layer_norm_eps"])

    def forward_features(self, x):
        B = x.shape[0]
        x = torch.cat([self.cls_token.expand(B, -1, -1), self.patch_embed(x)], dim=1) + self.pos_embed
        x = torch.cat([x[:, :1], self.register_tokens.expand(B, -1, -1), x[:, 1:]], dim=1)
        for blk in self.blocks:
            x = blk(x)
        x_norm = self.norm(x)
        return {
            "x_norm_clstoken": x_norm[:, 0],
            "x_norm_regtokens": x_norm[:, 1:self.R + 1],
            "x_norm_patchtokens": x_norm[:, self.R + 1:],
            "x_prenorm": x,
        }


torch.manual_seed(0)
model = DinoVisionTransformer(CONFIG).eval()
with torch.no_grad():
    for name, p in model.named_parameters():  # every parameter random, at a scale that keeps activations O(1)
        if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
            p.copy_(1 + 0.2 * torch.randn_like(p))
        elif p.dim() >= 2 and not name.endswith("_token") and name != "pos_embed" and "register" not in name:
            p.copy_(torch.randn_like(p) / p[0].numel() ** 0.5)
        elif name.endswith("gamma"):
            p.copy_(0.5 + 0.5 * torch.rand_like(p))
        else:
            p.copy_(0.5 * torch.randn_like(p))
sd = collections.OrderedDict((k, v.detach().clone()) for k, v in model.state_dict().items())
assert sd["blocks.0.mlp.w12.weight"].shape == (224, 40) and sd["blocks.0.mlp.w3.weight"].shape == (40, 112)

pixels = torch.randn(2, CONFIG["in_chans"], CONFIG["img_size"], CONFIG["img_size"])
with torch.no_grad():
    out = model.forward_features(pixels)

save(os.path.join(DATA, "dinov2-swiglu-tiny.safetensors"), sd)
torch.save(sd, os.path.join(DATA, "dinov2-swiglu-tiny.pth"))
meta = {"config": json.dumps(CONFIG), "tolerance": json.dumps({"atol": 1e-5, "rtol": 1e-4}),
        "torch": torch.__version__}
save(os.path.join(DATA, "dinov2-swiglu-tiny.cases.safetensors"), {"pixel_values": pixels, **out}, meta)
print("wrote dinov2-swiglu-tiny.{safetensors,pth,cases.safetensors} to", os.path.normpath(DATA))
