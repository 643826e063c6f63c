// Images on disk <-> tensors, through sharp (libvips): PNG, JPEG, WebP, GIF, TIFF, SVG and more.
// Tensors are float (C, H, W) in [-1, 1] — the range RepTok works in — or batches (B, C, H, W).
//
// An image file states its size in its header, and a few hundred bytes can claim 16000×16000 pixels: the size is
// checked against `maxPixels` before anything is decoded, and when the output size is known JPEG and WebP are
// decoded already shrunk (libvips' shrink-on-load), so memory follows the output, not the file's claim.
import sharp from 'sharp';

import { Tensor, cat, fromBytes, noGrad, ones, stack, tidy } from '../engine/index.ts';

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

/** Refuses an image whose header claims more than `maxPixels` pixels, before any pixel is decoded. */
async function checkSize(input: string | Buffer, o: ReadImageOptions): Promise<void> {
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

/** Decodes an image file (or encoded bytes) into a float (C, H, W) tensor in [-1, 1]. */
export async function readImage(input: string | Buffer, o: ReadImageOptions = {}): Promise<Tensor> {
  const { data, c, h, w } = await readImageBytes(input, o);
  return tidy(() => fromBytes(data, 'uint8', [c, h, w]).to('float32').div_(127.5).sub_(1)); // in place: one copy
}

/** float [-1, 1] (C, H, W) -> uint8 (H, W, C) bytes. */
function toBytes(img: Tensor): { data: Buffer; height: number; width: number; channels: number } {
  if (img.ndim !== 3 || (img.shape[0] !== 1 && img.shape[0] !== 3))
    throw new RangeError(`expected an image tensor (1|3, H, W), got shape [${img.shape.join(', ')}]`);
  const [channels, height, width] = img.shape as [number, number, number];
  const data = noGrad(() =>
    tidy(() => img.detach().add(1).mul(127.5).round().clamp(0, 255).to('uint8').permute(1, 2, 0).contiguous().bytes()),
  );
  return { data, height, width, channels };
}

/** Encodes a float (C, H, W) tensor in [-1, 1] as PNG bytes. */
export async function encodePng(img: Tensor): Promise<Buffer> {
  const { data, height, width, channels } = toBytes(img);
  return sharp(data, { raw: { width, height, channels: channels as 1 | 3 } })
    .png()
    .toBuffer();
}

/** Writes a float (C, H, W) tensor in [-1, 1] to an image file (format from the extension). */
export async function writeImage(path: string, img: Tensor): Promise<void> {
  const { data, height, width, channels } = toBytes(img);
  await sharp(data, { raw: { width, height, channels: channels as 1 | 3 } }).toFile(path);
}

/** Tiles images (B, C, H, W) into one (C, H', W') grid with `nrow` images per row and a `padding`-pixel border. */
export function imageGrid(images: Tensor, o: { nrow?: number; padding?: number; padValue?: number } = {}): Tensor {
  const [B, C, H, W] = images.shape as [number, number, number, number];
  const nrow = Math.min(o.nrow ?? 8, B);
  const rows = Math.ceil(B / nrow);
  const pad = o.padding ?? 2;
  const value = o.padValue ?? 1;
  return noGrad(() =>
    tidy(() => {
      const cell = (i: number): Tensor => {
        const img = i < B ? images.select(0, i) : ones([C, H, W]).mul(value);
        return img.detach().to('float32');
      };
      const padded = (t: Tensor): Tensor =>
        tidy(() => {
          const v = ones([C, H + pad, W + pad]).mul(value);
          return cat([cat([v.slice(1, 0, pad).slice(2, 0, W), t], 1), v.slice(2, 0, pad)], 2);
        });
      const rowTensors = Array.from({ length: rows }, (_, r) =>
        cat(
          Array.from({ length: nrow }, (_, c) => padded(cell(r * nrow + c))),
          2,
        ),
      );
      const grid = cat(rowTensors, 1); // (C, rows·(H+pad), nrow·(W+pad))
      const right = ones([C, grid.shape[1]!, pad]).mul(value);
      const withRight = cat([grid, right], 2);
      const bottom = ones([C, pad, withRight.shape[2]!]).mul(value);
      return cat([withRight, bottom], 1);
    }),
  );
}

/** Reads several images into one batch (B, C, H, W); all must end up the same size (pass `size` or `resize`). */
export async function readImages(paths: string[], o: ReadImageOptions = {}): Promise<Tensor> {
  const imgs = await Promise.all(paths.map((p) => readImage(p, o)));
  const shapes = new Set(imgs.map((t) => t.shape.join('x')));
  if (shapes.size > 1) {
    for (const t of imgs) t.dispose();
    throw new Error(
      `images have different sizes (${[...shapes].join(', ')}); pass { size } or { resize } to make them equal`,
    );
  }
  const out = stack(imgs, 0);
  for (const t of imgs) t.dispose();
  return out;
}
