// Every example runs as printed: the engine examples learn; the pipeline example uses saved models.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

import sharp from 'sharp';

import { readImage } from '../src/index.ts';
import { ROOT } from './helpers.ts';
import { saveTinyModels } from './tiny-models.ts';

test('examples/quickstart.ts (the README example) trains and the loss falls', () => {
  const out = execFileSync(process.execPath, ['--import', 'tsx', join(ROOT, 'examples', 'quickstart.ts'), '1000'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  const losses = [...out.matchAll(/loss (\d+\.\d+)/g)].map((m) => Number(m[1]));
  assert.equal(losses.length, 3);
  assert.ok(losses[2]! < losses[0]! / 5, out);
});

test('examples/fashion-mnist-mlp.ts trains a classifier above 80% test accuracy in one epoch', () => {
  const out = execFileSync(process.execPath, ['--import', 'tsx', join(ROOT, 'examples', 'fashion-mnist-mlp.ts'), '1'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  const accuracy = Number(/test accuracy (\d+\.\d+)%/.exec(out)?.[1]);
  assert.ok(accuracy > 80, out);
});

test('examples/use-models.ts samples, reconstructs and interpolates with saved models', async () => {
  const { dir } = saveTinyModels();
  const out = join(dir, 'out');
  const text = execFileSync(process.execPath, ['--import', 'tsx', join(ROOT, 'examples', 'use-models.ts'), dir, out], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  assert.match(text, /classes: circle,square,triangle/);
  const samples = await readImage(join(out, 'samples.png'));
  assert.deepEqual(samples.shape, [3, 3 * 18 + 2, 2 * 18 + 2]);
  assert.deepEqual((await readImage(join(out, 'reconstructions.png'))).shape, [3, 2 * 18 + 2, 2 * 18 + 2]);
  assert.equal((await sharp(join(out, 'interpolation.gif')).metadata()).format, 'gif');
});
