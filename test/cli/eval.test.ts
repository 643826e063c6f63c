// reptok eval end to end on tiny random models and a synthetic image folder: report.json and index.html with the
// grids it references, --json on stdout, and one-line errors for missing or mismatched inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { manualSeed } from '../../src/engine/index.ts';
import { Classifier, saveClassifier } from '../../src/models/classifier.ts';
import { saveTinyModels } from '../tiny-models.ts';
import { syntheticFolder } from '../train/fixtures.ts';
import { reptok } from './run-cli.ts';

const files = saveTinyModels();
const folder = await syntheticFolder();
manualSeed(4);
const classifier = join(files.dir, 'classifier.safetensors');
const net = new Classifier({ imageChannels: 3, widths: [8, 8, 16], numClasses: 2 });
saveClassifier(classifier, net, { data: { classes: ['left', 'right'] } });
net.dispose();
const small = ['--images', '4', '--reference', '8', '--steps', '2', '--paths', '1', '--frames', '3', '--threads', '1'];

test('reptok eval writes report.json and an index.html whose images exist', async () => {
  const out = join(files.dir, 'eval');
  const args = ['eval', '--tokenizer', files.tokenizer, '--classifier', classifier, '--data', `folder:${folder}`];
  const r = await reptok(...args, ...small, '-o', out, '--json');
  // the synthetic folder holds out every 20th of its 48 images: a test split of 2
  assert.equal(r.code, 0, r.err);
  const printed = JSON.parse(r.out);
  const saved = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
  assert.deepEqual({ ...printed.reconstruction }, saved.reconstruction);
  assert.equal(saved.protocol.data, `folder:${folder}`);
  assert.match(saved.protocol.featureSpace, /reference classifier .*classifier\.safetensors/);
  assert.equal(saved.generation, undefined); // no generator loaded
  const html = readFileSync(join(out, 'index.html'), 'utf8');
  const srcs = [...html.matchAll(/src="([^"]+)"/g)].map((m) => m[1]!);
  assert.deepEqual(srcs, ['reconstructions.png', 'interpolations.png']);
  for (const s of srcs) assert.ok(existsSync(join(out, s)), s);
  const human = await reptok(...args, ...small, '-o', out);
  assert.equal(human.code, 0, human.err);
  assert.match(human.out, /reconstruction \(2 images\): PSNR .* dB, SSIM/);
  // with a text-to-image model: caption retrieval and a row per held-out prompt
  const t2i = await reptok(
    ...args,
    ...small,
    '--t2i',
    files.t2i,
    '--prompts',
    '2',
    '--prompt',
    'a red square',
    '-o',
    out,
  );
  assert.equal(t2i.code, 0, t2i.err);
  assert.match(t2i.out, /text-to-image \(2 prompts × 4\): a real image with the prompt as caption among the 5/);
  assert.match(readFileSync(join(out, 'index.html'), 'utf8'), /src="prompts\.png"/);
  assert.ok(existsSync(join(out, 'prompts.png')));
});

test('reptok eval refuses missing and mismatched inputs in one line', async () => {
  const base = ['eval', '--tokenizer', files.tokenizer, ...small];
  const none = await reptok(...base, '--data', `folder:${folder}`);
  assert.equal(none.code, 2);
  assert.match(none.err, /pass --classifier FILE/);
  const noData = await reptok(...base, '--classifier', classifier);
  assert.equal(noData.code, 1);
  assert.match(noData.err, /unknown data set 'synthetic'/);
  const mismatch = await reptok(...base, '--classifier', classifier, '--generator', files.generator);
  assert.equal(mismatch.code, 1);
  assert.match(
    mismatch.err,
    /classifier's classes \(left, right\) are not the generator's \(circle, square, triangle\)/,
  );
  const frames = await reptok(...base, '--classifier', classifier, '--frames', '1');
  assert.equal(frames.code, 2);
  assert.match(frames.err, /--frames must be at least 2/);
});
