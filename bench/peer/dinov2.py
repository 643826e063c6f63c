"""PyTorch side of `npm run bench:dinov2`: forward throughput of the official DINOv2 architecture (ViT-S/14 and
ViT-B/14 with registers, random weights), written here with PyTorch 1.13's matmul attention (no fused kernel)."""
import argparse

import torch

from common import serve, time_median
from vit import ViT


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
