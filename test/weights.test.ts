// The models that ship in weights/: each file is a reptok model file that loads as its kind and has its model card
// beside it, weights/ stays under 60 MB, and RepTok.load() and the commands use them when no model is named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';

import { peekModelFile, type ModelKind } from '../src/models/model-file.ts';
import { loadClassifierFile } from '../src/models/classifier.ts';
import { loadEncoderFile } from '../src/models/dinov2-weights.ts';
import { loadGeneratorFile } from '../src/models/generator.ts';
import { loadTextToImageFile } from '../src/models/t2i.ts';
import { loadTokenizerFile } from '../src/models/tokenizer.ts';
import { RepTok, SHIPPED_WEIGHTS, shippedDir } from '../src/pipeline/index.ts';
import { reptok } from './cli/run-cli.ts';
import { ROOT } from './helpers.ts';

const WEIGHTS = join(ROOT, 'weights');
const all = readdirSync(WEIGHTS, { recursive: true, encoding: 'utf8' }).map((f) => join(WEIGHTS, f));
const files = all.filter((f) => f.endsWith('.safetensors'));
const LOADERS: Partial<Record<ModelKind, (f: string) => { model: { dispose(): void } }>> = {
  encoder: loadEncoderFile,
  classifier: loadClassifierFile,
  tokenizer: loadTokenizerFile,
  generator: loadGeneratorFile,
  t2i: loadTextToImageFile,
};

test('every shipped model file describes itself, loads as its kind, and has a model card', () => {
  assert.equal(SHIPPED_WEIGHTS, WEIGHTS);
  for (const family of ['fashion-mnist', 'emoji'])
    for (const kind of ['encoder', 'classifier', 'tokenizer'])
      assert.ok(existsSync(join(WEIGHTS, family, `${kind}.safetensors`)), `weights/${family}/${kind} is missing`);
  for (const file of files) {
    const d = peekModelFile(file);
    assert.ok(d.training?.command.startsWith('reptok train'), `${file}: no training command recorded`);
    const card = file.replace(/\.safetensors$/, '.md');
    assert.ok(existsSync(card), `${file}: no model card`);
    assert.match(readFileSync(card, 'utf8'), /```\nreptok train /, `${card}: no command that reproduces it`);
    const load = LOADERS[d.kind];
    assert.ok(load, `${file}: no loader for kind ${d.kind}`);
    load(file).model.dispose();
  }
  const bytes = all.filter((f) => statSync(f).isFile()).reduce((n, f) => n + statSync(f).size, 0);
  assert.ok(bytes < 60e6, `weights/ holds ${(bytes / 1e6).toFixed(1)} MB, over the 60 MB budget`);
});

test('RepTok.load() is the shipped Fashion-MNIST set, RepTok.load("emoji") the text-to-image one', async () => {
  const rt = RepTok.load();
  try {
    assert.ok(rt.generator, 'the shipped Fashion-MNIST set has a class-conditional generator');
    assert.equal(rt.classes.length, 10);
    const sample = join(shippedDir('fashion-mnist'), 'samples', 'Bag');
    const images = await rt.readImages([join(sample, readdirSync(sample)[0]!)]);
    const back = rt.decode(rt.encode(images), { steps: 2 });
    assert.deepEqual(back.shape, [1, 1, 28, 28]);
    for (const t of [images, back]) t.dispose();
  } finally {
    rt.dispose();
  }
  const emoji = RepTok.load('emoji');
  try {
    assert.ok(emoji.t2i, 'the shipped emoji set has a text-to-image model');
    assert.equal(emoji.channels, 3);
  } finally {
    emoji.dispose();
  }
});

test('commands without a model run the shipped ones, and say so', async () => {
  const out = mkdtempSync(join(tmpdir(), 'reptok-shipped-'));
  const sampled = await reptok('sample', '--class', 'Bag', '--n', '1', '--steps', '2', '-o', join(out, 's.png'));
  assert.equal(sampled.code, 0, sampled.err);
  assert.match(sampled.err, /using the shipped fashion-mnist models/);
  assert.ok(((await sharp(join(out, 's.png')).metadata()).width ?? 0) >= 28, 'a grid of 28-pixel samples');
  const generated = await reptok('generate', 'red apple', '--n', '1', '--steps', '2', '-o', join(out, 'g.png'));
  assert.equal(generated.code, 0, generated.err);
  assert.match(generated.err, /using the shipped emoji models/);
  // eval: the shipped Fashion-MNIST models and their classifier, here with a tiny protocol
  const small = ['--images', '4', '--samples-per-class', '1', '--reference', '20', '--steps', '2', '--paths', '1'];
  const evaluated = await reptok('eval', ...small, '--frames', '3', '-o', join(out, 'eval'), '--json');
  assert.equal(evaluated.code, 0, evaluated.err);
  const report = JSON.parse(evaluated.out);
  assert.equal(report.models.classifier, join(shippedDir('fashion-mnist'), 'classifier.safetensors'));
  assert.equal(report.protocol.referenceSplit, 'test');
});
