"""PyTorch side of `npm run bench:tokenizer`: RepTok's stage-A training step and one decoder evaluation in eager
PyTorch, structured operation for operation like the reference (CompVis/RepTok: separate trainable and frozen-target
DINOv2 copies, rms_norm/cosine-attention/RoPE/SwiGLU as separate kernels, AdamW), written here for PyTorch 1.13.

Mid-size configuration: DINOv2-S/14-reg at 112 px (from 128x128 images), decoder width 384, depth 6, head dim 64,
mapping 256x2, latent 4x16x16, batch 8.
"""
import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import LayerNorm, precision, serve, time_median
from vit import ViT as Dino, sdpa


def preprocess(imgs, size):
    side = min(imgs.shape[-2:])
    factor = side // size
    top, left = (imgs.shape[-2] - side) // 2, (imgs.shape[-1] - side) // 2
    imgs = imgs[..., top:top + side, left:left + side]
    if factor > 1:
        imgs = F.avg_pool2d(imgs, factor)
    imgs = F.interpolate(imgs, [size, size], mode="bilinear")
    imgs = (imgs + 1.0) / 2.0
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (imgs - mean) / std


# ---- decoder (as the reference's eager code) --------------------------------------------------------------------
def rms_norm(x, scale, eps=1e-6):
    mean_sq = torch.mean(x.float() ** 2, dim=-1, keepdim=True)
    return x * (scale.float() * torch.rsqrt(mean_sq + eps)).to(x.dtype)


class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return rms_norm(x, self.scale)


class AdaRMSNorm(nn.Module):
    def __init__(self, d, c):
        super().__init__()
        self.linear = nn.Linear(c, d, bias=False)

    def forward(self, x, cond):
        return rms_norm(x, self.linear(cond)[:, None, :] + 1)


class SwiGLU(nn.Linear):
    def __init__(self, i, o):
        super().__init__(i, 2 * o, bias=False)

    def forward(self, x):
        x, gate = (x @ self.weight.mT).chunk(2, dim=-1)
        return x * F.silu(gate)


def apply_rotary(x, theta):
    d = theta.shape[-1]
    x1, x2, x3 = x[..., :d], x[..., d:2 * d], x[..., 2 * d:]
    cos, sin = torch.cos(theta), torch.sin(theta)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin, x3), dim=-1)


class Attention(nn.Module):
    def __init__(self, w, d_head, c):
        super().__init__()
        self.h, self.e = w // d_head, d_head
        self.norm = AdaRMSNorm(w, c)
        self.qkv_proj = nn.Linear(w, 3 * w, bias=False)
        self.scale = nn.Parameter(torch.full([self.h], 10.0))
        dim = d_head // 2
        f = torch.linspace(math.log(math.pi), math.log(10 * math.pi), self.h * dim // 4 + 1)[:-1].exp()
        self.register_buffer("freqs", torch.stack([f, f]).view(2, dim // 4, self.h).mT.contiguous())
        self.out_proj = nn.Linear(w, w, bias=False)

    def forward(self, x, pos, cond):
        skip = x
        qkv = self.qkv_proj(self.norm(x, cond))
        theta = torch.cat((pos[..., None, 0:1] * self.freqs[0], pos[..., None, 1:2] * self.freqs[1]), dim=-1).movedim(-2, -3)
        B, L, _ = qkv.shape
        q, k, v = qkv.view(B, L, 3, self.h, self.e).permute(2, 0, 3, 1, 4)
        s = torch.sqrt(self.scale[:, None, None])
        q = q * (s * torch.rsqrt(torch.sum(q ** 2, dim=-1, keepdim=True) + 1e-6))
        k = k * (s * torch.rsqrt(torch.sum(k ** 2, dim=-1, keepdim=True) + 1e-6))
        q, k = apply_rotary(q, theta), apply_rotary(k, theta)
        o = sdpa(q, k, v, scale=1.0).transpose(1, 2).reshape(B, L, -1)
        return self.out_proj(o) + skip


class FeedForward(nn.Module):
    def __init__(self, w, dff, c):
        super().__init__()
        self.norm = AdaRMSNorm(w, c)
        self.up_proj = SwiGLU(w, dff)
        self.down_proj = nn.Linear(dff, w, bias=False)

    def forward(self, x, cond):
        return self.down_proj(self.up_proj(self.norm(x, cond))) + x


def positions(h, w):
    c = lambda n: (torch.linspace(-1, 1, n + 1)[:-1] + torch.linspace(-1, 1, n + 1)[1:]) / 2
    return torch.stack(torch.meshgrid(c(h), c(w), indexing="ij"), dim=-1).view(h * w, 2)


class Decoder(nn.Module):
    def __init__(self, C=4, w=384, depth=6, d_head=64, c=256):
        super().__init__()
        self.merge = nn.Linear(C * 4, w, bias=False)
        self.proj = nn.Linear(w, w, bias=False)
        self.attn = nn.ModuleList([Attention(w, d_head, c) for _ in range(depth)])
        self.ff = nn.ModuleList([FeedForward(w, 3 * w, c) for _ in range(depth)])
        self.out_norm = RMSNorm(w)
        self.out = nn.Linear(w, C * 4, bias=False)

    def forward(self, z, cond, extra):
        B, C, H, W = z.shape
        x = z.permute(0, 2, 3, 1).reshape(B, H // 2, 2, W // 2, 2, C).permute(0, 1, 3, 2, 4, 5).reshape(B, H * W // 4, 4 * C)
        pos = positions(H, W).view(1, H // 2, 2, W // 2, 2, 2).permute(0, 1, 3, 2, 4, 5).reshape(1, H * W // 4, 4, 2).mean(-2).expand(B, -1, -1)
        x = self.proj(torch.cat([extra, self.merge(x)], 1))
        pos = torch.cat([torch.zeros(B, 1, 2), pos], 1)
        for a, f in zip(self.attn, self.ff):
            x = f(a(x, pos, cond), cond)
        y = self.out(self.out_norm(x[:, 1:]))
        return y.reshape(B, H // 2, W // 2, 2, 2, C).permute(0, 1, 3, 2, 4, 5).reshape(B, H, W, C).permute(0, 3, 1, 2)


class Mapping(nn.Module):
    def __init__(self, w=256, depth=2):
        super().__init__()
        self.register_buffer("fourier", torch.randn(w // 2, 1))
        self.time_in_proj = nn.Linear(w, w, bias=False)
        self.in_norm, self.out_norm = RMSNorm(w), RMSNorm(w)
        self.blocks = nn.ModuleList([nn.ModuleList([RMSNorm(w), SwiGLU(w, 3 * w), nn.Linear(3 * w, w, bias=False)]) for _ in range(depth)])

    def forward(self, t):
        f = 2 * math.pi * t[:, None] @ self.fourier.T
        x = self.in_norm(self.time_in_proj(torch.cat([f.cos(), f.sin()], -1)))
        for n, up, down in self.blocks:
            x = down(up(n(x))) + x
        return self.out_norm(x)


class Tokenizer(nn.Module):
    def __init__(self):
        super().__init__()
        self.model, self.target_model = Dino(), Dino()
        self.target_model.load_state_dict(self.model.state_dict())
        self.model.requires_grad_(False)
        self.model.cls_token.requires_grad_(True)
        self.target_model.requires_grad_(False)
        self.temp_pos_embed = nn.Parameter(torch.zeros(1, 1, 384))
        self.fc, self.ln = nn.Linear(384, 384), LayerNorm(384)
        self.decoder, self.mapping = Decoder(), Mapping()

    def adapt(self, token):
        x = token[:, None] + self.temp_pos_embed[0]
        return self.ln(self.fc(x)) + x


state = {}


def setup(batch):
    if not state:
        torch.manual_seed(0)
        tok = Tokenizer()
        params = [p for p in tok.parameters() if p.requires_grad]
        state.update(tok=tok, opt=torch.optim.AdamW(params, lr=1e-4), x=torch.rand(batch, 3, 128, 128) * 2 - 1,
                     lat=torch.randn(batch, 4, 16, 16), token=torch.randn(batch, 384))
    return state


def train_step(batch, iters, warmup=0):
    s = setup(batch)
    tok, opt, x, lat = s["tok"], s["opt"], s["x"], s["lat"]

    def step():
        B = x.shape[0]
        t = torch.sigmoid(torch.randn(B))
        eps = torch.randn_like(lat)
        te = t.view(B, 1, 1, 1)
        zt = (1 - te) * lat + te * eps
        with autocast():
            imgs = preprocess(x, 112)
            token = tok.model(imgs)
            with torch.no_grad():
                target = tok.target_model(imgs)
            cos = 1 - F.cosine_similarity(token, target, dim=-1)
            v = tok.decoder(zt, tok.mapping(t), tok.adapt(token))
            loss = ((eps - lat - v) ** 2).mean() + cos.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return {"bench": "tokenizer_train_step", "batch": batch, "seconds": time_median(step, iters, warmup)}


def decoder_nfe(batch, iters, warmup=0):
    s = setup(batch)
    tok = s["tok"]

    def nfe():
        with torch.no_grad(), autocast():
            z = torch.randn(batch, 4, 16, 16)
            tok.decoder(z, tok.mapping(torch.full((batch,), 0.5)), tok.adapt(s["token"]))

    return {"bench": "tokenizer_decoder_nfe", "batch": batch, "seconds": time_median(nfe, iters, warmup)}


ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--bf16", action="store_true", help="forward passes under torch.autocast('cpu', dtype=torch.bfloat16)")
args = ap.parse_args()
autocast = precision(args.bf16)
serve(args.threads, {"train_step": train_step, "decoder_nfe": decoder_nfe})
