// Reconstruction quality of images in [0, 1] (B, C, H, W), per image: PSNR and SSIM.
//
// SSIM follows Wang et al. 2004 as scikit-image's `structural_similarity(gaussian_weights=True, sigma=1.5,
// use_sample_covariance=False, data_range=1)` and torchmetrics compute it: local statistics under an 11-tap Gaussian
// window (σ 1.5, truncated at 3.5σ), C₁ = (0.01)², C₂ = (0.03)², the SSIM map averaged over the positions where the
// window lies inside the image (scikit-image crops (11 − 1)/2 pixels from each border), then over channels.
import { Tensor, F, noGrad, tidy, tensor } from '../engine/index.ts';

/** PSNR in dB of each image (B) against its target, both in [0, 1] (peak 1); MSE floored at 1e-10. */
export function psnrPerImage(pred: Tensor, target: Tensor): Tensor {
  checkPair('psnr', pred, target);
  return noGrad(() =>
    tidy(() =>
      pred
        .double()
        .sub(target.double())
        .square()
        .flatten(1)
        .mean(1)
        .clampMin(1e-10)
        .log()
        .mul(-10 / Math.LN10),
    ),
  );
}

const SSIM_SIGMA = 1.5;
const SSIM_RADIUS = Math.floor(3.5 * SSIM_SIGMA + 0.5); // 5: an 11-tap window, as scipy's gaussian_filter truncates
const C1 = 0.01 ** 2;
const C2 = 0.03 ** 2;

/** SSIM of each image (B) against its target, both (B, C, H, W) in [0, 1]; H and W at least 11. */
export function ssimPerImage(pred: Tensor, target: Tensor): Tensor {
  checkPair('ssim', pred, target);
  const [, C, H, W] = pred.shape as [number, number, number, number];
  const win = 2 * SSIM_RADIUS + 1;
  if (H < win || W < win) throw new Error(`ssim: images must be at least ${win}×${win} pixels, got ${H}×${W}`);
  return noGrad(() =>
    tidy(() => {
      const taps = Array.from({ length: win }, (_, i) => Math.exp(-((i - SSIM_RADIUS) ** 2) / (2 * SSIM_SIGMA ** 2)));
      const total = taps.reduce((a, b) => a + b);
      const g = tensor(
        taps.map((t) => t / total),
        { dtype: 'float64', device: pred.device },
      );
      const rows = g.reshape([1, 1, win, 1]).expand([C, 1, win, 1]);
      const cols = g.reshape([1, 1, 1, win]).expand([C, 1, 1, win]);
      // Separable Gaussian mean over valid positions only (the cropped region), one channel per group.
      const blur = (x: Tensor) => F.conv2d(F.conv2d(x, rows, null, { groups: C }), cols, null, { groups: C });
      const x = pred.double();
      const y = target.double();
      const mx = blur(x);
      const my = blur(y);
      const vx = blur(x.square()).sub(mx.square());
      const vy = blur(y.square()).sub(my.square());
      const cxy = blur(x.mul(y)).sub(mx.mul(my));
      const num = mx.mul(my).mul(2).add(C1).mul(cxy.mul(2).add(C2));
      const den = mx.square().add(my.square()).add(C1).mul(vx.add(vy).add(C2));
      return num.div(den).flatten(1).mean(1); // (B): mean over channels and positions
    }),
  );
}

function checkPair(name: string, pred: Tensor, target: Tensor): void {
  if (pred.dim() !== 4 || pred.shape.join() !== target.shape.join())
    throw new Error(
      `${name}: expected two (B, C, H, W) batches of one shape, got [${pred.shape}] and [${target.shape}]`,
    );
}
