"""Reference values for reptok's evaluation metrics, from scikit-image and SciPy.

- PSNR and SSIM of committed image pairs in [0, 1]: skimage.metrics.peak_signal_noise_ratio(data_range=1) and
  structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1,
  channel_axis=0), per image; grayscale (1 channel) and RGB (3 channels), 28x28 and 32x24.
- Frechet distance between two random Gaussians (SPD covariances that do not commute) from their statistics,
  through SciPy's general matrix square root in float64 (well conditioned here, so sqrtm is accurate).

Writes test/data/metric-cases.safetensors. Run with Debian's packages (python3-torch, python3-skimage):
    /usr/bin/python3 tools/reference/make_metric_cases.py
"""
import os
import sys

import numpy as np
import scipy.linalg
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

sys.path.insert(0, os.path.dirname(__file__))
from safetensors_io import save  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "test", "data", "metric-cases.safetensors")
rng = np.random.default_rng(20261129)
cases = {}


def image_pairs(name, b, c, h, w):
    target = rng.random((b, c, h, w))
    # Predictions from mildly to heavily degraded: noise plus a blur-like shift, clipped to [0, 1].
    noise = rng.normal(0, 1, (b, c, h, w)) * np.linspace(0.02, 0.3, b)[:, None, None, None]
    pred = np.clip(0.7 * target + 0.3 * np.roll(target, 1, axis=-1) + noise, 0, 1)
    psnr = [peak_signal_noise_ratio(target[i], pred[i], data_range=1) for i in range(b)]
    ssim = [
        structural_similarity(target[i], pred[i], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                              data_range=1, channel_axis=0)
        for i in range(b)
    ]
    cases[f"{name}.pred"] = torch.from_numpy(pred)
    cases[f"{name}.target"] = torch.from_numpy(target)
    cases[f"{name}.psnr"] = torch.tensor(psnr, dtype=torch.float64)
    cases[f"{name}.ssim"] = torch.tensor(ssim, dtype=torch.float64)


image_pairs("gray", 6, 1, 28, 28)
image_pairs("rgb", 4, 3, 32, 24)


def spd(d):
    a = rng.normal(0, 1, (d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


d = 12
mu1, mu2 = rng.normal(0, 1, d), rng.normal(0, 1, d)
s1, s2 = spd(d), spd(d)
covmean = scipy.linalg.sqrtm(s1 @ s2).real
fd = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
cases.update({
    "fd.mu1": torch.from_numpy(mu1), "fd.mu2": torch.from_numpy(mu2),
    "fd.sigma1": torch.from_numpy(s1), "fd.sigma2": torch.from_numpy(s2),
    "fd.value": torch.tensor([fd], dtype=torch.float64),
})

import skimage  # noqa: E402

save(OUT, cases, {"skimage": skimage.__version__, "scipy": scipy.__version__, "torch": torch.__version__})
print(f"wrote {OUT}: {len(cases)} tensors")
