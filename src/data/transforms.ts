// Image transforms for training batches, in plain JavaScript over uint8 images so they can run in the batch worker
// without libtorch: crops (center, random with padding, random-resized), resizing (bilinear), horizontal flips and
// colour jitter, producing floats in [-1, 1]. A TransformSpec is plain data (it travels to the worker).
import type { Rng } from './prng.ts';

export interface TransformSpec {
  /** Output size (square side or [height, width]). */
  size: number | [number, number];
  /** 'resize' (whole image), 'center' (largest centred square, then resize), 'random' (shifted crop after padding
   * by `pad` pixels), 'random-resized' (random area/aspect crop, then resize). */
  crop: 'resize' | 'center' | 'random' | 'random-resized';
  pad?: number;
  /** Area fraction and aspect-ratio ranges of 'random-resized' (torchvision defaults). */
  scale?: [number, number];
  ratio?: [number, number];
  /** Probability of a horizontal flip. */
  hflip?: number;
  /** Jitter strengths: factors are drawn from [1 − s, 1 + s]. */
  brightness?: number;
  contrast?: number;
  saturation?: number;
  /** Output channels (1: luminance; 3: gray images are repeated). Defaults to the input's. */
  channels?: 1 | 3;
}

export interface Image {
  data: Uint8Array; // (C, H, W)
  c: number;
  h: number;
  w: number;
}

export const outSize = (s: TransformSpec): [number, number] => (typeof s.size === 'number' ? [s.size, s.size] : s.size);

/** The crop box [y0, x0, height, width] in source pixels (may extend beyond the image for 'random' with pad). */
function cropBox(img: Image, s: TransformSpec, rng: Rng | null): [number, number, number, number] {
  const [oh, ow] = outSize(s);
  switch (s.crop) {
    case 'resize':
      return [0, 0, img.h, img.w];
    case 'center': {
      const side = Math.min(img.h, img.w);
      return [(img.h - side) / 2, (img.w - side) / 2, side, side];
    }
    case 'random': {
      const pad = s.pad ?? 0;
      const dy = rng ? rng.int(img.h - oh + 2 * pad + 1) - pad : Math.floor((img.h - oh) / 2);
      const dx = rng ? rng.int(img.w - ow + 2 * pad + 1) - pad : Math.floor((img.w - ow) / 2);
      return [dy, dx, oh, ow];
    }
    case 'random-resized': {
      if (!rng) return cropBox(img, { ...s, crop: 'center' }, null);
      const [smin, smax] = s.scale ?? [0.08, 1];
      const [rmin, rmax] = s.ratio ?? [3 / 4, 4 / 3];
      const area = img.h * img.w;
      for (let attempt = 0; attempt < 10; attempt++) {
        const target = area * rng.uniform(smin, smax);
        const ar = Math.exp(rng.uniform(Math.log(rmin), Math.log(rmax)));
        const w = Math.round(Math.sqrt(target * ar));
        const h = Math.round(Math.sqrt(target / ar));
        if (w > 0 && h > 0 && w <= img.w && h <= img.h) return [rng.int(img.h - h + 1), rng.int(img.w - w + 1), h, w];
      }
      const side = Math.min(img.h, img.w);
      return [(img.h - side) / 2, (img.w - side) / 2, side, side];
    }
  }
}

/**
 * Transforms one uint8 image into `out` (floats in [-1, 1], layout (C', oh, ow)) at `offset`. `rng` null gives
 * the deterministic (evaluation) version: centred crops, no flips or jitter.
 */
export function transformInto(img: Image, s: TransformSpec, rng: Rng | null, out: Float32Array, offset: number): void {
  const [oh, ow] = outSize(s);
  const [y0, x0, ch, cw] = cropBox(img, s, rng);
  const flip = rng !== null && (s.hflip ?? 0) > 0 && rng.next() < s.hflip!;
  const jitter = (k: number | undefined): number => (rng && k ? rng.uniform(Math.max(0, 1 - k), 1 + k) : 1);
  const [bf, cf, sf] = [jitter(s.brightness), jitter(s.contrast), jitter(s.saturation)];
  const C = img.c;
  const plane = new Float32Array(C * oh * ow);
  // bilinear sampling of the crop box (align_corners = false); outside the image the edge pixel repeats
  const sy = ch / oh;
  const sx = cw / ow;
  const at = (c: number, y: number, x: number): number =>
    img.data[c * img.h * img.w + Math.min(img.h - 1, Math.max(0, y)) * img.w + Math.min(img.w - 1, Math.max(0, x))]!;
  for (let i = 0; i < oh; i++) {
    const fy = y0 + (i + 0.5) * sy - 0.5;
    const iy = Math.floor(fy);
    const wy = fy - iy;
    for (let j = 0; j < ow; j++) {
      const jj = flip ? ow - 1 - j : j;
      const fx = x0 + (jj + 0.5) * sx - 0.5;
      const ix = Math.floor(fx);
      const wx = fx - ix;
      for (let c = 0; c < C; c++) {
        const v =
          (1 - wy) * ((1 - wx) * at(c, iy, ix) + wx * at(c, iy, ix + 1)) +
          wy * ((1 - wx) * at(c, iy + 1, ix) + wx * at(c, iy + 1, ix + 1));
        plane[c * oh * ow + i * ow + j] = v;
      }
    }
  }
  // colour jitter in torchvision's order: brightness, contrast (around the mean luminance), saturation
  const n = oh * ow;
  const lum = (p: number): number =>
    C === 3 ? 0.299 * plane[p]! + 0.587 * plane[n + p]! + 0.114 * plane[2 * n + p]! : plane[p]!;
  if (bf !== 1) for (let k = 0; k < plane.length; k++) plane[k] = plane[k]! * bf;
  if (cf !== 1) {
    let mean = 0;
    for (let p = 0; p < n; p++) mean += lum(p);
    mean /= n;
    for (let k = 0; k < plane.length; k++) plane[k] = (plane[k]! - mean) * cf + mean;
  }
  if (sf !== 1 && C === 3) {
    for (let p = 0; p < n; p++) {
      const g = lum(p);
      for (let c = 0; c < 3; c++) plane[c * n + p] = (plane[c * n + p]! - g) * sf + g;
    }
  }
  const outC = s.channels ?? C;
  for (let c = 0; c < outC; c++) {
    for (let p = 0; p < n; p++) {
      const v = outC === C ? plane[c * n + p]! : outC === 1 ? lum(p) : plane[p]!;
      out[offset + c * n + p] = Math.min(255, Math.max(0, v)) / 127.5 - 1;
    }
  }
}

/** Values per transformed image. */
export const transformedSize = (s: TransformSpec, c: number): number => {
  const [h, w] = outSize(s);
  return (s.channels ?? c) * h * w;
};
