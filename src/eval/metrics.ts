// Image-quality numbers for reconstructions of images in the models' [-1, 1] range.
import { Tensor, tidy } from '../engine/index.ts';
import { psnrPerImage } from './image-quality.ts';

/** Peak signal-to-noise ratio in dB of images in [-1, 1] (per image on the [0, 1] scale, then averaged). */
export function psnr(pred: Tensor, target: Tensor): number {
  return tidy(() => psnrPerImage(pred.add(1).div(2), target.add(1).div(2)).mean().item() as number);
}
