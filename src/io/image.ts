// Images on disk <-> tensors, through sharp (libvips): PNG, JPEG, WebP, GIF, TIFF, SVG and more.
// Tensors are float (C, H, W) in [-1, 1] — the range RepTok works in — or batches (B, C, H, W).
import sharp from 'sharp';

import { Tensor, cat, fromBytes, noGrad, ones, stack, tidy } from '../engine/index.ts';
import { readImageBytes, type ReadImageOptions } from './image-decode.ts';

export { readImageBytes, type ReadImageOptions } from './image-decode.ts';

/** Decodes an image file (or encoded bytes) into a float (C, H, W) tensor in [-1, 1]. */
export async function readImage(input: string | Buffer, o: ReadImageOptions = {}): Promise<Tensor> {
  const { data, c, h, w } = await readImageBytes(input, o);
  return tidy(() => fromBytes(data, 'uint8', [c, h, w]).to('float32').div(127.5).sub(1));
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
