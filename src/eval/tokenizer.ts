// How well a tokenizer reconstructs: the decoder's flow-matching loss per time segment (where along the path it
// errs) and the PSNR of one-token reconstructions of held-out images, both with fixed noise so that numbers from
// different steps of a run compare.
import { Generator, full, randn, tidy, type Device, type GeneratorLike, type Tensor } from '../engine/index.ts';
import { moduleDevice } from '../nn/index.ts';
import type { RepTokTokenizer } from '../models/tokenizer.ts';
import { decoderPath, perSampleMse } from '../flow/paths.ts';
import { imagesTensor, type ImageArray } from '../data/image-array.ts';
import { psnr } from './metrics.ts';

/**
 * The decoder's flow loss for images (B, C, H, W) and noise (B, C, h, w) at the midpoints of `segments` equal
 * t-segments (the VAE posterior sample, in latent mode, draws from `generator`).
 */
export function flowLossBySegment(
  tok: RepTokTokenizer,
  images: Tensor,
  noise: Tensor,
  segments: number,
  generator?: GeneratorLike,
): number[] {
  return tidy(() => {
    const grid = tok.toGrid(images, generator);
    const cond = tok.condition(tok.encode(images));
    return Array.from({ length: segments }, (_, k) =>
      tidy(() => {
        const t = full([grid.shape[0]!], (k + 0.5) / segments, { device: grid.device });
        const v = tok.velocity(decoderPath.interpolate(grid, noise, t), t, cond);
        return perSampleMse(v, decoderPath.target(grid, noise)).mean().item();
      }),
    );
  });
}

/**
 * Mean PSNR of the one-token reconstructions of a data set's first `count` images, decoded in batches of 64 with
 * `steps` Euler steps from noise seeded by `seed` and the batch's position, on `device` (default: the tokenizer's).
 */
export function reconstructionPsnr(
  tok: RepTokTokenizer,
  d: ImageArray,
  count: number,
  o: { steps: number; seed: number; device?: Device },
): number {
  const device = o.device ?? moduleDevice(tok);
  let sum = 0;
  for (let i = 0; i < count; i += 64) {
    sum += tidy(() => {
      const imgs = imagesTensor(
        d,
        Int32Array.from({ length: Math.min(64, count - i) }, (_, k) => i + k),
      ).to(device);
      const generator = new Generator({ seed: o.seed + i, device });
      const noise = randn([imgs.shape[0]!, ...tok.gridShape], { generator, device });
      return psnr(tok.decode(tok.encode(imgs), { steps: o.steps, noise }).images, imgs) * imgs.shape[0]!;
    });
  }
  return sum / count;
}
