// Image-quality numbers for reconstructions.
import { Tensor, tidy } from '../engine/index.ts';

/** Peak signal-to-noise ratio in dB of images in [-1, 1] (per image, then averaged). */
export function psnr(pred: Tensor, target: Tensor): number {
  return tidy(() => {
    const mse = pred.sub(target).square().flatten(1).mean(1).clampMin(1e-10); // (B), on the [-1, 1] scale
    return mse
      .div(4)
      .log()
      .mul(-10 / Math.LN10)
      .mean()
      .item(); // peak-to-peak 2 -> (2)² = 4
  });
}
