// Image files <-> tensors through sharp: round trips, gray and RGB, SVG rasterisation, grids, corrupt files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { arange, randn, tidy } from '../../src/index.ts';
import sharp from 'sharp';

import {
  checkImageSize,
  encodePng,
  gridSize,
  imageGrid,
  readImage,
  readImages,
  writeAnimation,
  writeImage,
} from '../../src/io/image.ts';

const dir = mkdtempSync(join(tmpdir(), 'reptok-image-'));

test('PNG round trip is exact for values on the 8-bit grid', async () => {
  const img = tidy(() =>
    arange(0, 3 * 4 * 5)
      .reshape(3, 4, 5)
      .mul(4)
      .to('float32')
      .div(127.5)
      .sub(1),
  );
  const path = join(dir, 'a.png');
  await writeImage(path, img);
  const back = await readImage(path);
  assert.deepEqual(back.shape, [3, 4, 5]);
  assert.ok(back.allclose(img, 0, 1e-6));
  const gray = await readImage(path, { channels: 1 });
  assert.deepEqual(gray.shape, [1, 4, 5]);
  assert.equal((await encodePng(img)).subarray(1, 4).toString(), 'PNG');
});

test('SVGs rasterise on white at the requested size; resizing and square crops', async () => {
  const svg =
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 36 36"><circle cx="18" cy="18" r="10" fill="#ff0000"/></svg>';
  const path = join(dir, 'c.svg');
  writeFileSync(path, svg);
  const img = await readImage(path, { size: 32, density: 300 });
  assert.deepEqual(img.shape, [3, 32, 32]);
  assert.ok(
    img.select(1, 0).select(1, 0).allclose(img.select(1, 0).select(1, 0).mul(0).add(1)),
    'transparent corners become white',
  );
  const centre = img.select(1, 16).select(1, 16).toArray() as number[];
  assert.ok(centre[0]! > 0.9 && centre[1]! < -0.9, 'the circle is red');
  const wide = join(dir, 'wide.png');
  await writeImage(wide, randn([3, 20, 40]).clamp(-1, 1));
  assert.deepEqual((await readImage(wide, { size: 10 })).shape, [3, 10, 10]);
  assert.deepEqual((await readImage(wide, { resize: [7, 9] })).shape, [3, 7, 9]);
  assert.deepEqual((await readImages([wide, wide], { size: 8 })).shape, [2, 3, 8, 8]);
  await assert.rejects(readImages([wide, path], {}), /different sizes/);
});

test('a grid tiles a batch with borders; gridSize says its size beforehand; too wide for a format is refused', () => {
  const g = imageGrid(randn([5, 3, 4, 6]).clamp(-1, 1), { nrow: 3, padding: 1 });
  assert.deepEqual(g.shape, [3, 2 * 5 + 1, 3 * 7 + 1]);
  assert.deepEqual(gridSize(5, [4, 6], { nrow: 3, padding: 1 }), [3 * 7 + 1, 2 * 5 + 1]);
  assert.deepEqual(gridSize(2, [4, 6], { nrow: 8 }), [2 * 8 + 2, 4 + 4], 'a short row is as wide as its images');
  checkImageSize('wide.png', 100_000, 10);
  checkImageSize('wide.webp', 16_383, 10);
  assert.throws(() => checkImageSize('wide.webp', 16_384, 10), /wide\.webp: a 16384×10 image is too large for \.webp/);
  assert.throws(() => checkImageSize('tall.gif', 8, 70_000), /too large for \.gif \(65535 pixels a side at most\)/);
});

test('corrupt and missing files are errors naming the file', async () => {
  const bad = join(dir, 'bad.png');
  writeFileSync(bad, Buffer.from('\x89PNG\r\n\x1a\nnot really'));
  await assert.rejects(readImage(bad), (e: Error) => e.message.startsWith(`cannot read image ${bad}`));
  await assert.rejects(readImage(join(dir, 'missing.png')), /cannot read image .*missing\.png: no such file/);
  await assert.rejects(readImage(dir), /cannot read image .*: a folder, not a file/);
});

test('animations: one page per frame (GIF and WebP, RGB and gray), written atomically', async () => {
  for (const [ext, c] of [
    ['gif', 3],
    ['webp', 3],
    ['gif', 1],
  ] as const) {
    const path = join(dir, `anim-${c}.${ext}`);
    const frames = tidy(() => arange(4).reshape(4, 1, 1, 1).div(2).sub(1).expand(4, c, 6, 5).contiguous());
    await writeAnimation(path, frames, { delayMs: 70 });
    const m = await sharp(path, { animated: true }).metadata();
    assert.deepEqual([m.format, m.pages, m.pageHeight, m.width, m.delay], [ext, 4, 6, 5, [70, 70, 70, 70]]);
  }
  await assert.rejects(
    writeAnimation(join(dir, 'anim.png'), randn([2, 3, 4, 4])),
    /cannot write '\.png'; use one of \.gif, \.webp/,
  );
  await assert.rejects(writeImage(join(dir, 'x.bmp'), randn([3, 4, 4])), /x\.bmp: cannot write '\.bmp'/);
  await assert.rejects(
    writeAnimation(join(dir, 'slow.gif'), randn([2, 3, 4, 4]), { delayMs: -5 }),
    /delayMs must be an integer number of milliseconds in \[0, 65535\], got -5/,
  );
  await assert.rejects(
    writeAnimation(join(dir, 'l.gif'), randn([2, 3, 4, 4]), { loop: 1.5 }),
    /loop must be an integer/,
  );
  // a folder in the way: the rename fails, and the temporary file goes too
  mkdirSync(join(dir, 'folder.png'));
  await assert.rejects(writeImage(join(dir, 'folder.png'), randn([3, 4, 4])), /EISDIR/);
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.includes('.tmp-')),
    [],
  );
});
