// Images on disk <-> tensors, through sharp (libvips): PNG, JPEG, WebP, GIF, TIFF, SVG and more.
// Tensors are float (C, H, W) in [-1, 1] — the range RepTok works in — or batches (B, C, H, W).
//
// An image file states its size in its header, and a few hundred bytes can claim 16000×16000 pixels: the size is
// checked against `maxPixels` before anything is decoded, and when the output size is known JPEG and WebP are
// decoded already shrunk (libvips' shrink-on-load), so memory follows the output, not the file's claim.
// Files are written atomically (a temporary name, then a rename), so a crash never leaves half an image.
import { writeSync } from 'node:fs';
import { extname } from 'node:path';
import sharp from 'sharp';

import { Tensor, cat, fromBytes, noGrad, ones, stack, tidy } from '../engine/index.ts';
import { readImageBytes, type ReadImageOptions } from './image-decode.ts';
import { atomicWrite } from './atomic.ts';

export { DEFAULT_MAX_PIXELS, readImageBytes, type ReadImageOptions } from './image-decode.ts';

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
    tidy(() =>
      img
        .detach()
        .to({ device: 'cpu' }) // images computed on a GPU are written from host memory
        .add(1)
        .mul(127.5)
        .round()
        .clamp(0, 255)
        .to('uint8')
        .permute(1, 2, 0)
        .contiguous()
        .bytes(),
    ),
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

const FORMATS: Record<string, keyof sharp.FormatEnum> = {
  '.png': 'png',
  '.jpg': 'jpeg',
  '.jpeg': 'jpeg',
  '.webp': 'webp',
  '.gif': 'gif',
  '.tif': 'tiff',
  '.tiff': 'tiff',
  '.avif': 'avif',
};

/** The longest side each written format stores (libvips refuses larger images, after all the work that made them). */
const MAX_SIDE: Partial<Record<keyof sharp.FormatEnum, number>> = { webp: 16383, avif: 16384, gif: 65535, jpeg: 65535 };

/** The extensions of the image files reptok writes (the format follows the extension; image-decode.ts reads more). */
export const WRITABLE_IMAGE_EXTENSIONS: readonly string[] = Object.keys(FORMATS);
/** Those that hold an animation (writeAnimation). */
export const ANIMATION_EXTENSIONS: readonly string[] = ['.gif', '.webp'];

/** The output format for a file name, from its extension. */
function formatOf(path: string, allowed: readonly string[] = WRITABLE_IMAGE_EXTENSIONS): keyof sharp.FormatEnum {
  const ext = extname(path).toLowerCase();
  const format = allowed.includes(ext) ? FORMATS[ext] : undefined;
  if (!format) throw new Error(`${path}: cannot write '${ext || 'no extension'}'; use one of ${allowed.join(', ')}`);
  return format;
}

const writeBytes = (path: string, bytes: Buffer): void => atomicWrite(path, (fd) => void writeSync(fd, bytes));

/**
 * Checks that an image of `width`×`height` can be written to `path` (its format, from the extension, and that
 * format's largest side), so that a command can say so before it computes the image.
 */
export function checkImageSize(path: string, width: number, height: number): void {
  const format = formatOf(path);
  const max = MAX_SIDE[format];
  if (max !== undefined && Math.max(width, height) > max)
    throw new RangeError(
      `${path}: a ${width}×${height} image is too large for ${extname(path).toLowerCase()} ` +
        `(${max} pixels a side at most); write .png, or make fewer images per row`,
    );
}

/** Writes a float (C, H, W) tensor in [-1, 1] to an image file (format from the extension), atomically. */
export async function writeImage(path: string, img: Tensor): Promise<void> {
  const format = formatOf(path);
  const { data, height, width, channels } = toBytes(img);
  checkImageSize(path, width, height);
  writeBytes(
    path,
    await sharp(data, { raw: { width, height, channels: channels as 1 | 3 } })
      .toFormat(format)
      .toBuffer(),
  );
}

/** Checks an animation's frame delay (milliseconds, an integer GIF and WebP can store); `name` is the caller's. */
export function checkFrameDelay(ms: number, name = 'delayMs'): void {
  if (!(Number.isInteger(ms) && ms >= 0 && ms <= 65535))
    throw new RangeError(`${name} must be an integer number of milliseconds in [0, 65535], got ${ms}`);
}

/**
 * Writes frames (N, C, H, W) in [-1, 1] as an animation (.gif or .webp), each shown `delayMs`, looping forever
 * unless `loop` says how many times. Atomic like writeImage.
 */
export async function writeAnimation(
  path: string,
  frames: Tensor,
  o: { delayMs?: number; loop?: number } = {},
): Promise<void> {
  const format = formatOf(path, ANIMATION_EXTENSIONS) as 'gif' | 'webp';
  checkFrameDelay(o.delayMs ?? 100);
  if (o.loop !== undefined && !(Number.isInteger(o.loop) && o.loop >= 0 && o.loop <= 65535))
    throw new RangeError(`loop must be an integer in [0, 65535] (0: forever), got ${o.loop}`);
  if (frames.ndim !== 4) throw new RangeError(`expected frames (N, C, H, W), got shape [${frames.shape.join(', ')}]`);
  const N = frames.shape[0]!;
  // each frame as a PNG, then libvips joins them into the pages of one animated image
  const pngs = await Promise.all(
    Array.from({ length: N }, (_, i) => {
      const frame = frames.select(0, i);
      const png = encodePng(frame); // reads the pixels before its first await
      frame.dispose();
      return png;
    }),
  );
  const options = { delay: Array(N).fill(o.delayMs ?? 100), loop: o.loop ?? 0 };
  const img = sharp(pngs, { join: { animated: true } });
  writeBytes(path, await (format === 'gif' ? img.gif(options) : img.webp(options)).toBuffer());
}

export interface GridOptions {
  /** Images per row (default 8). */
  nrow?: number;
  /** Border in pixels (default 2). */
  padding?: number;
}

/** [width, height] of imageGrid's result for `count` images of `height`×`width`, without making it. */
export function gridSize(count: number, [height, width]: [number, number], o: GridOptions = {}): [number, number] {
  const nrow = Math.min(o.nrow ?? 8, count);
  const pad = o.padding ?? 2;
  return [nrow * (width + pad) + pad, Math.ceil(count / nrow) * (height + pad) + pad];
}

/**
 * Tiles images (B, C, H, W) on any device into one (C, H', W') grid on the CPU (for writing), with `nrow` images per
 * row and a `padding`-pixel border.
 */
export function imageGrid(images: Tensor, o: GridOptions & { padValue?: number } = {}): Tensor {
  const [B, C, H, W] = images.shape as [number, number, number, number];
  const nrow = Math.min(o.nrow ?? 8, B);
  const rows = Math.ceil(B / nrow);
  const pad = o.padding ?? 2;
  const value = o.padValue ?? 1;
  return noGrad(() =>
    tidy(() => {
      const cell = (i: number): Tensor => {
        const img = i < B ? images.select(0, i) : ones([C, H, W], { device: 'cpu' }).mul(value);
        return img.detach().to({ device: 'cpu', dtype: 'float32' });
      };
      const padded = (t: Tensor): Tensor =>
        tidy(() => {
          const v = ones([C, H + pad, W + pad], { device: 'cpu' }).mul(value);
          return cat([cat([v.slice(1, 0, pad).slice(2, 0, W), t], 1), v.slice(2, 0, pad)], 2);
        });
      const rowTensors = Array.from({ length: rows }, (_, r) =>
        cat(
          Array.from({ length: nrow }, (_, c) => padded(cell(r * nrow + c))),
          2,
        ),
      );
      const grid = cat(rowTensors, 1); // (C, rows·(H+pad), nrow·(W+pad))
      const right = ones([C, grid.shape[1]!, pad], { device: 'cpu' }).mul(value);
      const withRight = cat([grid, right], 2);
      const bottom = ones([C, pad, withRight.shape[2]!], { device: 'cpu' }).mul(value);
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
