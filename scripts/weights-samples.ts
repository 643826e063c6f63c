// Writes a family's sample images into weights/<family>/samples/<class>/NNN.png: held-out (test split) images, the
// same number of each class, that the demo page reconstructs and the web demo searches for a token's neighbours. With
// them the shipped models need no data set on the machine. Run by scripts/train-weights.mjs; by hand:
//
//   npx tsx scripts/weights-samples.ts fashion-mnist weights/fashion-mnist [--n 100]
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';

import { loadSplits } from '../src/train/datasets.ts';

const [family, dir, flag, count] = process.argv.slice(2);
if (!family || !dir || (flag !== undefined && flag !== '--n'))
  throw new Error('usage: weights-samples.ts FAMILY DIR [--n N]');
const n = Number(count ?? 100);
if (!(Number.isInteger(n) && n > 0)) throw new Error(`--n must be a positive integer, got ${count}`);

const { test } = await loadSplits(family);
const perClass = Math.ceil(n / test.classes.length);
const taken = new Map<number, number>(); // class -> images written
const folderName = (c: number) => (test.classes[c] ?? String(c)).replace(/[^A-Za-z0-9_-]+/g, '-');
const out = join(dir, 'samples');
rmSync(out, { recursive: true, force: true });
const size = test.c * test.h * test.w;
let written = 0;
for (let i = 0; i < test.n && written < n; i++) {
  const c = test.labels[i]!;
  const k = taken.get(c) ?? 0;
  if (k >= perClass) continue;
  taken.set(c, k + 1);
  // (C, H, W) planes -> interleaved (H, W, C) for sharp
  const chw = test.pixels.subarray(i * size, (i + 1) * size);
  const hwc = Buffer.alloc(size);
  for (let p = 0; p < test.h * test.w; p++)
    for (let ch = 0; ch < test.c; ch++) hwc[p * test.c + ch] = chw[ch * test.h * test.w + p]!;
  const folder = join(out, folderName(c));
  mkdirSync(folder, { recursive: true });
  await sharp(hwc, { raw: { width: test.w, height: test.h, channels: test.c as 1 | 3 } })
    .png({ compressionLevel: 9 })
    .toFile(join(folder, `${String(i).padStart(5, '0')}.png`));
  written++;
}
console.log(`wrote ${written} ${family} test images to ${out} (${taken.size} classes)`);
