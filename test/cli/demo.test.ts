// `reptok demo` on shipped models, run on tiny ones: the page builder writes index.html whose every picture exists
// (reconstructions, interpolation strips and an animation, samples at each guidance scale, prompts), and a folder
// without models gets a clear error (exit ≠ 0). `npm run demo` runs the shipped models.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';

import { reptok } from './run-cli.ts';
import { ROOT } from '../helpers.ts';
import { tinyModelFolder } from '../server/serve-helpers.ts';

test('the page builder writes a page whose every picture exists', async () => {
  const dir = await tinyModelFolder();
  const weights = mkdtempSync(join(tmpdir(), 'reptok-weights-'));
  cpSync(dir, join(weights, 'full'), { recursive: true });
  writeFileSync(join(weights, 'full', 'prompts.txt'), 'a red circle\na blue square\n');
  mkdirSync(join(weights, 'plain'));
  cpSync(join(dir, 'tokenizer.safetensors'), join(weights, 'plain', 'tokenizer.safetensors'));
  const out = join(weights, 'page');
  const args = ['--steps', '2', '--images', '4', '--frames', '3', '--n', '1', '--threads', '1'];
  const r = await reptok('demo', '--model', weights, '--out', out, ...args);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /Wrote .*index\.html in \d+\.\d s/);
  assert.match(r.out, new RegExp(`reptok serve --model ${weights}`));

  const html = readFileSync(join(out, 'index.html'), 'utf8');
  const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
  for (const ref of refs) assert.ok(existsSync(join(out, ref)), `index.html refers to ${ref}, which is not there`);
  const count = (pattern: RegExp) => refs.filter((f) => pattern.test(f)).length;
  assert.equal(count(/^full\/reconstruction-\d\.png$/), 4);
  assert.equal(count(/^full\/interpolation-\d\.png$/), 2);
  assert.equal(count(/^full\/samples-\d\.png$/), 3, 'one picture per guidance scale (1, 2, 4)');
  assert.equal(count(/^full\/prompt-\d\.png$/), 2);
  assert.equal(count(/^plain\//), 0, 'a tokenizer without samples makes no pictures');
  assert.match(html, /No sample images: the tokenizer&#39;s data set is not available here/);
  // the strips and the animation decode: 3 frames of 16 px with 2 px borders
  const strip = await sharp(join(out, 'full', 'interpolation-0.png')).metadata();
  assert.deepEqual([strip.width, strip.height], [3 * 18 + 2, 20]);
  // (tiny random models ignore the token, so every frame is the same and the encoder may merge them: no frame count)
  const anim = await sharp(join(out, 'full', 'interpolation.webp'), { pages: -1 }).metadata();
  assert.deepEqual([anim.format, anim.width], ['webp', 16]);
  for (const part of ['One-token reconstructions', 'Interpolations', 'Class-conditional samples', 'Text to image'])
    assert.match(html, new RegExp(`<td>full</td><td>${part}</td><td>\\d+\\.\\d s</td>`));
});

test('a folder without models gets an error that says what a model folder holds', async () => {
  const empty = mkdtempSync(join(tmpdir(), 'reptok-empty-'));
  const r = await reptok('demo', '--model', empty);
  assert.equal(r.code, 1);
  assert.match(r.err, /no model files \(tokenizer\.safetensors, generator\.safetensors, t2i\.safetensors\)/);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  assert.match(pkg.scripts.demo, /reptok\.mjs demo$/, 'npm run demo runs the shipped models');
});
