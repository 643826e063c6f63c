// RepTok's encoder input path: crop/pool/resize/normalise, checked end to end against the tokenizer fixture's
// token (CompVis/RepTok's own preprocessing and DINOv2), plus the path's edge cases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { F, arange, noGrad, randn, tidy } from '../../src/index.ts';
import { betterResize, centerCrop, dinov2ImageTransform, reptokPreprocess } from '../../src/models/preprocess.ts';
import { DinoVisionTransformer } from '../../src/models/dinov2.ts';
import { inferDinov2Config } from '../../src/models/dinov2-weights.ts';
import { loadSafetensors } from '../../src/io/index.ts';
import { writeImage } from '../../src/io/image.ts';
import { assertClose, loadFixture } from '../helpers.ts';

test('images in [-1, 1] -> RepTok preprocessing -> DINOv2 cls token matches CompVis/RepTok', () => {
  const fx = loadFixture('reptok/tokenizer-tiny');
  const prefix = 'encoder.dino.model.';
  const all = loadSafetensors(fx.weightsPath).tensors;
  const sd = new Map([...all].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
  const d = fx.config.dino;
  const model = new DinoVisionTransformer(
    inferDinov2Config(sd, {
      numHeads: d.num_heads,
      interpolateAntialias: d.interpolate_antialias,
      interpolateOffset: d.interpolate_offset,
    }),
  );
  model.loadStateDict(sd);
  tidy(() =>
    noGrad(() => {
      const token = model.forward(reptokPreprocess(fx.cases.get('train.images')!, d.model_size));
      assertClose(token, fx.cases.get('train.token')!, fx.config.tolerance, 'token');
    }),
  );
});

test('center crop offsets round halves to even like torchvision; large images are average-pooled first', () => {
  const x = arange(0, 5 * 8)
    .reshape(1, 1, 5, 8)
    .float();
  // (8 − 5) / 2 = 1.5 rounds to 2 (Python's round)
  assert.deepEqual(centerCrop(x, 5, 5).select(2, 0).flatten().toArray(), [2, 3, 4, 5, 6]);
  assert.deepEqual(
    centerCrop(arange(0, 7).reshape(1, 1, 1, 7).float(), 1, 6)
      .flatten()
      .toArray(),
    [0, 1, 2, 3, 4, 5],
  );
  const big = randn([1, 3, 130, 120]);
  const expected = F.interpolate(F.avgPool2d(centerCrop(big, 120, 120), 2), { size: [56, 56], mode: 'bilinear' });
  assert.ok(betterResize(big, 56).allclose(expected));
});

test('images outside [-1, 1] and non-RGB inputs are rejected with a hint', () => {
  assert.throws(() => reptokPreprocess(randn([1, 3, 8, 8]).mul(300), 14), /must be in \[-1, 1\].*x \/ 127\.5 - 1/);
  assert.throws(() => reptokPreprocess(randn([1, 1, 8, 8]).clamp(-1, 1), 14), /expected RGB images/);
});

test('the DINOv2 evaluation transform reads a file into a normalised 224×224 crop', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'reptok-img-')), 'x.png');
  await writeImage(path, randn([3, 300, 400]).clamp(-1, 1));
  const t = await dinov2ImageTransform(path);
  assert.deepEqual(t.shape, [3, 224, 224]);
  assert.ok(Math.abs(t.mean().item()) < 1);
});
