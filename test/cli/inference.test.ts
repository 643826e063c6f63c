// The inference commands end to end on tiny random models: encode, decode, reconstruct, interpolate, sample,
// generate and info produce their files (decodable images, parseable --json), and every bad input ends with a
// non-zero exit and one line that says what was wrong. Commands run in-process through main() (one libtorch load);
// one run goes through the `reptok` executable itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';

import { Generator, rand, randn, readImage } from '../../src/index.ts';
import { reptok } from './run-cli.ts';
import { commandLine, parseArgs } from '../../src/cli/args.ts';
import { modelSources } from '../../src/cli/model-options.ts';
import { loadGeneratorFile, peekModelFile, saveGenerator } from '../../src/models/index.ts';
import { saveTokens } from '../../src/pipeline/tokens-file.ts';
import { ROOT } from '../helpers.ts';
import { TINY_CLASSES, saveTinyModels } from '../tiny-models.ts';
import { syntheticFolder, tinyConfigs } from '../train/fixtures.ts';

const files = saveTinyModels();
const dir = files.dir;
const images = ['a.png', 'b.png'].map((n) => join(dir, n));
for (const [i, p] of images.entries())
  await (
    await import('../../src/io/image.ts')
  ).writeImage(
    p,
    rand([3, 20 + 4 * i, 24], { generator: new Generator({ seed: i }) })
      .mul(2)
      .sub(1),
  );

const json = async (...args: string[]): Promise<any> => {
  const r = await reptok(...args, '--json');
  assert.equal(r.code, 0, `reptok ${args.join(' ')} failed: ${r.err}`);
  return JSON.parse(r.out);
};

const M = ['--model', dir];

/** No temporary files left next to the outputs. */
const noTemporaries = (folder: string) =>
  assert.deepEqual(
    readdirSync(folder).filter((f) => f.includes('.tmp-')),
    [],
  );

test('encode -> tokens file; decode -> one decodable image per token; info describes both', async () => {
  const tokens = join(dir, 'tokens.safetensors');
  const e = await json('encode', ...images, ...M, '-o', tokens);
  assert.deepEqual([e.count, e.tokenDim, e.sources], [2, 32, images]);
  const d = await json('decode', tokens, ...M, '-o', join(dir, 'decoded'), '--steps', '2', '--sampler', 'heun');
  assert.deepEqual(d.images, [join(dir, 'decoded', 'a.png'), join(dir, 'decoded', 'b.png')]);
  for (const f of d.images) assert.deepEqual((await readImage(f)).shape, [3, 16, 16]);
  noTemporaries(join(dir, 'decoded'));
  const info = await json('info', tokens);
  assert.deepEqual([info.kind, info.count, info.tokenDim], ['tokens', 2, 32]);
  // tokens made by another tokenizer of the same width decode, with a note that says so
  const foreign = join(dir, 'foreign-tokens.safetensors');
  saveTokens(foreign, { tokens: randn([1, 32]), sources: [], tokenizer: 'elsewhere/tokenizer.safetensors' });
  const r = await reptok('decode', foreign, ...M, '-o', join(dir, 'foreign'), '--steps', '1');
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /note: these tokens were made by elsewhere\/tokenizer\.safetensors; decoded them with /);
});

test('reconstruct writes original | reconstruction pairs and their PSNR', async () => {
  const r = await json('reconstruct', ...images, ...M, '-o', join(dir, 'recon'), '--steps', '2', '--seed', '4');
  assert.equal(r.images.length, 2);
  assert.ok(r.psnr.every((p: number) => Number.isFinite(p)));
  const m = await sharp(r.images[0]).metadata();
  assert.deepEqual([m.width, m.height], [2 * 18 + 2, 18 + 2]); // two 16-pixel images with 2-pixel borders
});

test('interpolate: a strip, a GIF and a WebP animation; slerp norms stay between the endpoints', async () => {
  const strip = await json('interpolate', ...images, ...M, '--frames', '4', '--steps', '1', '-o', join(dir, 's.png'));
  assert.equal((await sharp(strip.output).metadata()).width, 4 * 18 + 2);
  const [first, last] = [strip.tokenNorms[0], strip.tokenNorms.at(-1)];
  for (const n of strip.tokenNorms)
    assert.ok(n >= Math.min(first, last) - 1e-4 && n <= Math.max(first, last) + 1e-4, `${n}`);
  for (const ext of ['gif', 'webp']) {
    const out = join(dir, `anim.${ext}`);
    const a = await json('interpolate', ...images, ...M, '--frames', '3', '--steps', '1', '--lerp', '-o', out);
    assert.deepEqual([a.animated, a.method], [true, 'lerp']);
    // an animation (identical frames, which these random models may decode, are merged by the encoder)
    const meta = await sharp(out, { animated: true }).metadata();
    assert.deepEqual([meta.format, meta.width], [ext, 16]);
  }
  noTemporaries(dir);
});

test('sample by class names and indices, or --all; generate from prompts', async () => {
  const s = await json(
    'sample',
    ...M,
    '--class',
    'square',
    '--class',
    '2',
    '--n',
    '3',
    '--steps',
    '1',
    '-o',
    join(dir, 'g.png'),
  );
  assert.deepEqual(
    [s.classes, s.labels],
    [
      ['square', 'triangle'],
      [1, 1, 1, 2, 2, 2],
    ],
  );
  assert.equal((await sharp(s.output).metadata()).width, 3 * 18 + 2);
  const all = await json(
    'sample',
    ...M,
    '--all',
    '--n',
    '1',
    '--steps',
    '1',
    '--cfg',
    '2',
    '--interval',
    '0.2,0.8',
    '-o',
    join(dir, 'all.png'),
  );
  assert.deepEqual(all.classes, TINY_CLASSES);
  const tok = ['--tokenizer', files.tokenizer];
  const g = await json(
    'generate',
    'a red circle',
    'a blue square',
    '--t2i',
    files.t2i,
    ...tok,
    '--n',
    '2',
    '--steps',
    '1',
    '-o',
    join(dir, 't.png'),
  );
  assert.deepEqual(g.prompts, ['a red circle', 'a blue square']);
  assert.equal((await sharp(g.output).metadata()).height, 2 * 18 + 2);
});

test('--no-pack-weights and --precision reach the pipeline (packed float32 is the default)', async () => {
  const { spec } = await import('../../src/cli/commands/sample.ts');
  const sources = (...argv: string[]) => modelSources(parseArgs(spec, ['--model', dir, ...argv]).options, () => {});
  assert.equal(sources().packWeights, true);
  assert.equal(sources('--no-pack-weights').packWeights, false);
  assert.equal(sources().precision, 'fp32');
  assert.equal(sources('--precision', 'bf16').precision, 'bf16');
  assert.throws(() => sources('--precision', 'fp16'), /--precision must be one of auto, fp32, bf16, got 'fp16'/);
  const run = ['--no-pack-weights', '--precision', 'bf16', '--class', '0', '--n', '1', '--steps', '1'];
  const s = await json('sample', ...M, ...run, '-o', join(dir, 'np.png'));
  assert.deepEqual([s.labels, s.precision], [[0], 'bf16'], 'the JSON says which precision made the outputs');
});

test('a generator alone finds the tokenizer it was trained with (recorded in its file), and says so', async () => {
  const gdir = join(dir, 'gen-run');
  mkdirSync(gdir);
  const gen = join(gdir, 'generator.safetensors');
  const m = loadGeneratorFile(files.generator);
  saveGenerator(gen, m.model, { data: m.data, extra: { tokenizerFile: files.tokenizer } });
  m.model.dispose();
  const r = await reptok(
    'sample',
    '--model',
    gdir,
    '--class',
    '0',
    '--n',
    '1',
    '--steps',
    '1',
    '-o',
    join(gdir, 's.png'),
  );
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, new RegExp(`using the tokenizer .* was trained with: ${files.tokenizer}`));
  const bad = await reptok('sample', '--generator', files.generator, '--class', '0');
  assert.equal(bad.code, 1);
  assert.match(bad.err, /no tokenizer given: pass --tokenizer FILE/);
  mkdirSync(join(dir, 'empty'));
  const empty = await reptok('sample', '--model', join(dir, 'empty'), '--all');
  assert.match(empty.err, /empty: no tokenizer\.safetensors, generator\.safetensors, t2i\.safetensors in this folder/);
});

test('info: architecture, parameters, dtype, data, training, version and uses of every model file', async () => {
  for (const kind of ['encoder', 'tokenizer', 'generator', 't2i'] as const) {
    const i = await json('info', files[kind]);
    assert.equal(i.kind, kind);
    assert.ok(i.parameters > 1000 && i.dtypes.includes('float32') && i.reptok && i.uses.length, kind);
    assert.match(i.architecture, /wide/);
    assert.equal(i.training.command, 'test/tiny-models.ts');
  }
  const human = await reptok('info', files.generator);
  assert.match(human.out, /classes.*circle/);
});

test('every command has --help with examples', async () => {
  for (const c of ['encode', 'decode', 'reconstruct', 'interpolate', 'sample', 'generate', 'info']) {
    const r = await reptok(c, '--help');
    assert.equal(r.code, 0);
    assert.match(r.out, new RegExp(`Usage: reptok ${c}[\\s\\S]*Examples:\\n  reptok ${c}`));
  }
  // a switch that is on by default shows how to turn it off
  assert.match((await reptok('sample', '--help')).out, /--\[no-\]pack-weights .*\(default: on\)/);
});

test('bad input: exit ≠ 0 with one line that says what was wrong', async () => {
  const narrow = join(dir, 'narrow-tokens.safetensors');
  saveTokens(narrow, { tokens: randn([2, 16]), sources: [], tokenizer: 'another' });
  const notImage = join(dir, 'notes.png');
  writeFileSync(notImage, 'this is not a picture');
  const cases: [string[], RegExp][] = [
    [['encode', join(dir, 'missing.png'), ...M], /missing\.png: no such file/],
    [['encode', notImage, ...M], /cannot read image .*notes\.png/],
    [['decode', join(dir, 'missing.safetensors'), ...M], /missing\.safetensors: no such file/],
    [['decode', narrow, ...M], /tokens have shape \[2, 16\], but this tokenizer's tokens are \(B, 32\)/],
    [['decode', files.tokenizer, ...M], /not a reptok tokens file/],
    [['sample', ...M, '--class', 'dog'], /unknown class 'dog'; this generator's classes are 0=circle, 1=square/],
    [
      ['generate', 'a cat', '--generator', files.generator, '--tokenizer', files.tokenizer],
      /class-conditional .* takes no prompts/,
    ],
    [
      ['sample', '--all', '--tokenizer', files.generator],
      /expected a reptok tokenizer .* but it is a reptok generator/,
    ],
    [['reconstruct', ...images, '--model', join(dir, 'nowhere')], /nowhere: no such file or folder \(--model\)/],
    [['decode', narrow, ...M, '--sampler', 'rk4'], /--sampler must be one of euler, heun, dopri5/],
    [['interpolate', ...images, ...M, '--slerp', '--lerp'], /choose one of --slerp and --lerp/],
    [['interpolate', ...images, ...M, '--delay', '-5', '-o', join(dir, 'x.gif')], /--delay must be an integer number/],
    [
      ['sample', ...M, '--class', '0', '--n', '1000', '-o', join(dir, 'w.webp')],
      /w\.webp: a 18002×20 image is too large/,
    ],
    [['sample', ...M, '--class', '0', '--model-yaml', notImage], /--model-yaml describes a released checkpoint/],
    [['sample', ...M, '--class', '0', '--encoder-heads', '6'], /--encoder-heads describes a released checkpoint/],
    [
      ['interpolate', ...images, ...M, '-o', join(dir, 'x.bmp')],
      /name a file ending in \.png, .*\.gif.* for the frames/,
    ],
  ];
  for (const [args, message] of cases) {
    const r = await reptok(...args);
    assert.notEqual(r.code, 0, `reptok ${args.join(' ')} should fail`);
    const first = r.err.split('\n')[0]!;
    assert.match(first, message, `reptok ${args.join(' ')}`);
    assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace');
  }
  assert.ok(!existsSync(join(dir, 'x.bmp')));
});

test('--out is checked before any work: a file where a folder goes, a folder where a file goes, a wrong extension', async () => {
  const out = join(dir, 'outs');
  mkdirSync(join(out, 'grid.png'), { recursive: true }); // a folder with an image's name
  writeFileSync(join(out, 'taken'), 'a file');
  const tokens = join(dir, 'out-check.safetensors');
  saveTokens(tokens, { tokens: randn([2, 32]), sources: [], tokenizer: 'another' });
  // --model names nothing: had the command loaded it first, that would be the error
  const none = ['--model', join(dir, 'nowhere')];
  const cases: [string[], RegExp][] = [
    [['reconstruct', ...images, '-o', join(out, 'pairs.png')], /pairs\.png looks like an image file's name/],
    [['decode', tokens, '-o', join(out, 'taken')], /taken is a file, not a folder/],
    [['sample', '--class', '0', '-o', join(out, 'grid.png')], /grid\.png is a folder; name the file for the grid/],
    [['sample', '--class', '0', '-o', join(out, 'grid.txt')], /name a file ending in \.png, .* for the grid/],
    [['generate', 'a cat', '-o', join(out, 'taken')], /name a file ending in \.png/],
    [['encode', ...images, '-o', join(out, 'tokens.png')], /name a file ending in \.safetensors for the tokens/],
    [['eval', '--classifier', tokens, '-o', join(out, 'taken')], /taken is a file, not a folder/],
    [['sample', '--class', '0', '-o', '/proc/reptok-x/grid.png'], /cannot use a folder on the proc pseudo file system/],
    [['sample', '--class', '0', '-o', ''], /--out is empty: name a file for the grid/],
    [['decode', tokens, '-o', ''], /--out is empty: name a folder for the images/],
  ];
  for (const [args, message] of cases) {
    const r = await reptok(...args, ...none);
    assert.notEqual(r.code, 0, `reptok ${args.join(' ')} should fail`);
    assert.match(r.err.split('\n')[0]!, message, `reptok ${args.join(' ')}`);
  }
  assert.deepEqual(readdirSync(out).sort(), ['grid.png', 'taken']); // nothing made, nothing left behind
});

test('the reptok executable runs a command and reports a failure by its exit status', () => {
  const bin = join(ROOT, 'bin', 'reptok.mjs');
  const out = execFileSync(
    process.execPath,
    [bin, 'encode', images[0]!, ...M, '-o', join(dir, 'one.safetensors'), '--json'],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(JSON.parse(out).count, 1);
  const bad = spawnSync(process.execPath, [bin, 'sample', ...M, '--class', 'dog'], { encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
});

test('reptok train records its command line in the model file it exports', async () => {
  assert.equal(commandLine('train', ['ssl', '--set', "note=it's a b"]), `reptok train ssl --set 'note=it'\\''s a b'`);
  const data = `folder:${await syntheticFolder()}`;
  const config = join(dir, 'ssl.json');
  writeFileSync(config, JSON.stringify(tinyConfigs(data).ssl));
  const out = join(dir, 'ssl-run');
  const args = ['ssl', '--preset', 'fmnist-ssl', '--config', config, '--out', out, '--steps', '1'];
  const r = await reptok('train', ...args);
  assert.equal(r.code, 0, r.err);
  const d = peekModelFile(join(out, 'encoder.safetensors'), 'encoder');
  assert.deepEqual([d.training?.command, d.training?.step], [commandLine('train', args), 1]);
});
