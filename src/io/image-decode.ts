// Decoding images into uint8 pixels through sharp (libvips), without libtorch: also used by decode worker threads
// (data/stream-worker.mjs), which must not load the engine. image.ts builds tensors on top of it.
import { statSync } from 'node:fs';
import sharp from 'sharp';

import { whyUnreadable } from './unreadable.ts';

/** File extensions sharp decodes. */
export const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp', '.gif', '.svg', '.tif', '.tiff', '.avif']);

export interface ReadImageOptions {
  /** 3 (RGB, default) or 1 (gray). Transparent images are composited on `background`. */
  channels?: 1 | 3;
  /** Resize so the shorter side has this length (aspect kept), then center-crop to a square of that size. */
  size?: number;
  /** Exact output size [height, width] (aspect not kept). */
  resize?: [number, number];
  background?: string;
  /** SVG rasterisation density (dpi); 72 renders an SVG at its nominal size. */
  density?: number;
  /** Largest width × height accepted (from the header, before decoding). Default DEFAULT_MAX_PIXELS. */
  maxPixels?: number;
}

/** 2^25 pixels (e.g. 8192 × 4096): well above any training image, far below sharp's own 268 M limit. */
export const DEFAULT_MAX_PIXELS = 2 ** 25;

const describeInput = (input: string | Buffer): string => (typeof input === 'string' ? input : '(image bytes)');

/**
 * Refuses a path that is no file, and an image whose header claims more than `maxPixels` pixels, before any pixel
 * is decoded.
 */
async function checkSize(input: string | Buffer, o: ReadImageOptions): Promise<void> {
  if (typeof input === 'string') {
    // a missing file or a folder in words, not libvips' "unsupported image format"
    let folder: boolean;
    try {
      folder = statSync(input).isDirectory();
    } catch (e) {
      throw new Error(whyUnreadable(e));
    }
    if (folder) throw new Error(whyUnreadable({ code: 'EISDIR' }));
  }
  const limit = o.maxPixels ?? DEFAULT_MAX_PIXELS;
  const { width = 0, height = 0 } = await sharp(input, {
    density: o.density ?? 72,
    limitInputPixels: false,
  }).metadata();
  if (width * height > limit)
    throw new Error(
      `${width}×${height} = ${width * height} pixels, more than the limit of ${limit} ` +
        '(raise it with the maxPixels option if the image is real)',
    );
}

function pipeline(input: string | Buffer, o: ReadImageOptions): sharp.Sharp {
  // limitInputPixels backs up checkSize (e.g. for formats whose metadata sharp reports differently)
  const limit = o.maxPixels ?? DEFAULT_MAX_PIXELS;
  let img = sharp(input, {
    density: o.density ?? 72,
    failOn: 'error',
    limitInputPixels: limit,
    sequentialRead: true,
  }).flatten({
    background: o.background ?? '#ffffff',
  });
  if (o.size !== undefined) img = img.resize(o.size, o.size, { fit: 'cover', position: 'centre', kernel: 'cubic' });
  else if (o.resize) img = img.resize(o.resize[1], o.resize[0], { fit: 'fill', kernel: 'cubic' });
  return (o.channels ?? 3) === 1 ? img.grayscale() : img.removeAlpha().toColourspace('srgb');
}

/** Decodes an image into uint8 channels-first pixels (C, H, W) (no tensor; used to build in-memory data sets). */
export async function readImageBytes(
  input: string | Buffer,
  o: ReadImageOptions = {},
): Promise<{ data: Uint8Array; c: number; h: number; w: number }> {
  let data: Buffer;
  let info: sharp.OutputInfo;
  try {
    await checkSize(input, o);
    ({ data, info } = await pipeline(input, o).raw().toBuffer({ resolveWithObject: true }));
  } catch (e) {
    throw new Error(`cannot read image ${describeInput(input)}: ${(e as Error).message}`);
  }
  const { channels: c, height: h, width: w } = info;
  const chw = new Uint8Array(c * h * w);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) chw[k * h * w + y * w + x] = data[(y * w + x) * c + k]!;
  return { data: chw, c, h, w };
}
