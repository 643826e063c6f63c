// The released checkpoint through the product: `reptok convert` writes self-describing model files that reproduce
// the fixture's cases, `RepTok.load({ checkpoint })` and `--model FILE.ckpt` use the checkpoint directly, and bad
// input ends with a non-zero exit and one line. Weights, cases and tolerances from reptok/official-ckpt-tiny.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Tensor, noGrad, readImage, tidy } from '../../src/index.ts';
import { loadSafetensors } from '../../src/io/index.ts';
import { reptok } from './run-cli.ts';
import { loadTokenizerFile } from '../../src/models/tokenizer.ts';
import { classField, loadGeneratorFile } from '../../src/models/generator.ts';
import { generate } from '../../src/flow/token-flow.ts';
import { RepTok } from '../../src/pipeline/index.ts';
import { assertClose, fixturesRoot } from '../helpers.ts';

const dir = join(fixturesRoot(), 'reptok', 'official-ckpt-tiny');
for (const f of ['config.json', 'cases.safetensors', 'reptok-tiny.ckpt'])
  assert.ok(existsSync(join(dir, f)), `fixture ${join(dir, f)} is missing: set REPTOK_FIXTURES`);
const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
const cases = loadSafetensors(join(dir, 'cases.safetensors')).tensors;
const c = (k: string): Tensor => cases.get(k)!;
const ckpt = join(dir, config.file);
const heads = String(config.tiny_sizes.dino.num_heads); // stored nowhere (see test/models/official-checkpoint.test.ts)
const tmp = mkdtempSync(join(tmpdir(), 'reptok-convert-'));

test('convert writes tokenizer.safetensors and generator.safetensors that reproduce the fixture', async () => {
  const out = join(tmp, 'converted');
  const r = await reptok('convert', ckpt, '-o', out, '--encoder-heads', heads, '--json');
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.deepEqual(readdirSync(out).sort(), ['generator.safetensors', 'tokenizer.safetensors']);
  assert.equal(j.generatorWeights, 'ema');
  assert.equal(j.tokenScale, config.tiny_sizes.scale_factor);
  assert.match(j.ignored.join('\n'), /metric_tracker/);

  const tok = loadTokenizerFile(j.tokenizer);
  const gen = loadGeneratorFile(j.generator);
  assert.equal(gen.extra.tokenizerFile, j.tokenizer);
  assert.equal(tok.training?.step, config.top_level.global_step);
  assert.deepEqual(tok.data.imageSize, [64, 64]);
  tidy(() =>
    noGrad(() => {
      const tol = config.cases;
      const enc = tok.model.encode(c('encode.images')).unsqueeze(1);
      assertClose(enc, c('encode.encoded_fp32'), tol.encode.tolerance.encoded_fp32, 'encoded_fp32 (converted)');
      const { grid } = tok.model.decode(c('decode.token').squeeze(1), { noise: c('decode.noise'), steps: 50 });
      assertClose(grid, c('decode.latent_out'), tol.decode.tolerance, 'latent_out (converted)');
      const z = generate(classField(gen.model, c('generate.y')), c('generate.noise'), {
        steps: c('generate.steps').item(),
        guidance: { scale: c('generate.cfg_scale').item(), interval: c('generate.t_interval').toArray() },
      }).z;
      assertClose(z, c('generate.generated'), tol.generate.tolerance, 'generated (converted)');
    }),
  );

  // the folder works as --model, and info describes what was converted
  const s = await reptok(
    'sample',
    '--model',
    out,
    '--class',
    '3',
    '--n',
    '2',
    '--steps',
    '2',
    '-o',
    join(tmp, 's.png'),
  );
  assert.equal(s.code, 0, s.err);
  assert.deepEqual((await readImage(join(tmp, 's.png'))).shape.slice(0, 1), [3]);
  const info = await reptok('info', j.tokenizer, '--json');
  assert.match(JSON.parse(info.out).training.command, /CompVis\/RepTok TrainerModuleLatentFlow/);
});

test('RepTok.load({ checkpoint }) runs the release directly: decode with given noise matches', () => {
  const rt = RepTok.load({ checkpoint: ckpt, checkpointOptions: { encoder: { numHeads: Number(heads) } } });
  assert.equal(rt.tokenDim, config.tiny_sizes.token_dim);
  assert.equal(rt.classes.length, config.tiny_sizes.num_classes);
  tidy(() => {
    const images = rt.decode(c('decode.token').squeeze(1), { noise: c('decode.noise'), steps: 50 });
    assertClose(images, c('decode.decoded').clamp(-1, 1), config.cases.decode.tolerance, 'decoded (pipeline)');
    const tokens = rt.encode(c('encode.images'));
    assertClose(tokens.unsqueeze(1), c('encode.encoded_fp32'), config.cases.encode.tolerance.encoded_fp32, 'tokens');
  });
  rt.dispose();
});

test('--model FILE.ckpt works in the inference commands', async () => {
  const r = await reptok(
    'sample',
    '--model',
    ckpt,
    '--encoder-heads',
    heads,
    '--class',
    '1',
    '--n',
    '1',
    '--steps',
    '2',
    '-o',
    join(tmp, 'direct.png'),
    '--json',
  );
  assert.equal(r.code, 0, r.err);
  assert.ok(existsSync(join(tmp, 'direct.png')));
});

test('bad input: exit ≠ 0 with one line that says what was wrong', async () => {
  const half = join(tmp, 'half.ckpt');
  const bytes = readFileSync(ckpt);
  writeFileSync(half, bytes.subarray(0, bytes.length >> 1));
  const cases: [string[], number, RegExp][] = [
    [['convert', half, '-o', join(tmp, 'x')], 1, /half\.ckpt: /],
    [['convert', join(tmp, 'nope.ckpt'), '-o', join(tmp, 'x')], 1, /nope\.ckpt: no such file/],
    [['convert', ckpt], 2, /pass -o DIR/],
    [['convert', ckpt, '-o', join(tmp, 'x'), '--weights', 'best'], 2, /--weights must be 'ema' or 'online'/],
    [['convert', ckpt, '-o', join(tmp, 'x'), '--encoder-heads', '-1'], 2, /--encoder-heads must be/],
    [['convert', ckpt, '-o', join(tmp, 'x')], 1, /head count is not stored .* do not split its width 32: pass/],
    [['info', ckpt], 1, /a PyTorch checkpoint, not a reptok model file;.*reptok convert/],
  ];
  for (const [args, code, message] of cases) {
    const r = await reptok(...args);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err.split('\n')[0]!, message, args.join(' '));
  }
  assert.ok(!existsSync(join(tmp, 'x', 'tokenizer.safetensors')), 'nothing half-written');
});
