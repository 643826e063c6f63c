// What the web demo's tests share: tiny model folders with sample images and test images made in memory (the
// `reptok serve` child process itself: tools/serve-process.ts).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';

import { TINY_CLASSES, saveTinyModels } from '../tiny-models.ts';

/** A w×h test picture: a coloured shape (i picks shape and colour) on white, encoded as `format`. */
export function testImage(i: number, w = 40, h = 32, format: 'png' | 'jpeg' | 'webp' = 'png'): Promise<Buffer> {
  const px = Buffer.alloc(w * h * 3, 255);
  const colour = [
    [220, 40, 40],
    [40, 90, 220],
    [40, 170, 60],
  ][i % 3]!;
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const [u, v] = [(x + 0.5) / w - 0.5, (y + 0.5) / h - 0.5];
      const inside =
        i % 3 === 0
          ? u * u + v * v < 0.1
          : i % 3 === 1
            ? Math.max(Math.abs(u), Math.abs(v)) < 0.3
            : v > -0.3 && Math.abs(u) < (v + 0.3) / 1.5;
      if (inside) px.set(colour, (y * w + x) * 3);
    }
  return sharp(px, { raw: { width: w, height: h, channels: 3 } })
    .toFormat(format)
    .toBuffer();
}

/** Tiny models of every kind in one folder, with samples/<class>/*.png for the neighbour search. */
export async function tinyModelFolder(): Promise<string> {
  const { dir } = saveTinyModels();
  for (const [c, name] of TINY_CLASSES.entries()) {
    mkdirSync(join(dir, 'samples', name), { recursive: true });
    for (let k = 0; k < 2; k++)
      await sharp(await testImage(c, 16 + 8 * k, 16)).toFile(join(dir, 'samples', name, `${k}.png`));
  }
  return dir;
}
