// The pipeline object on tiny random models: loading (paths and bytes), encode/decode/reconstruct, interpolation
// with one shared decoder noise and a norm-aware slerp, class sampling by name or index, text-to-image generation,
// and the errors for inputs that do not fit the models.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  Generator,
  RepTok,
  bf16Support,
  interpolateTokens,
  framePositions,
  noGrad,
  rand,
  randn,
  runtimeInfo,
  tidy,
  weightCopies,
  type InterpolationMethod,
  type SampleOptions,
  type SamplerName,
} from '../../src/index.ts';
import { MLPMixer1D, saveGenerator } from '../../src/models/index.ts';
import { TINY_CLASSES, saveTinyModels } from '../tiny-models.ts';

const files = saveTinyModels();
const images = (n: number, seed = 1) =>
  rand([n, 3, 16, 16], { generator: new Generator({ seed }) })
    .mul(2)
    .sub(1);

test('RepTok.load from paths and from bytes gives the same model; encode, decode and reconstruct', () => {
  const a = RepTok.load({ tokenizer: files.tokenizer });
  const b = RepTok.load({ tokenizer: readFileSync(files.tokenizer) });
  noGrad(() =>
    tidy(() => {
      const x = images(3);
      const tokens = a.encode(x);
      assert.deepEqual(tokens.shape, [3, 32]);
      assert.ok(tokens.allclose(b.encode(x), 0, 0));
      // encoding in chunks: the same tokens, up to float summation order
      assert.ok(a.encode(x, { batchSize: 2 }).allclose(tokens, 1e-5, 1e-6));
      assert.throws(() => a.encode(x, { batchSize: 0 }), /batchSize must be a positive integer, got 0/);
      const out = a.decode(tokens, { steps: 3, seed: 5 });
      assert.deepEqual(out.shape, [3, 3, 16, 16]);
      assert.ok(out.allclose(b.decode(tokens, { steps: 3, seed: 5 }), 0, 0), 'same seed, same images');
      assert.ok(!out.allclose(a.decode(tokens, { steps: 3, seed: 6 })), 'another seed, other images');
      assert.ok(a.reconstruct(x, { steps: 3, seed: 5 }).allclose(out, 0, 0));
      // decoding in chunks changes nothing
      assert.ok(a.decode(tokens, { steps: 3, seed: 5, batchSize: 2 }).allclose(out, 0, 0));
      assert.throws(() => a.decode(tokens, { steps: 1, batchSize: 0 }), /batchSize must be a positive integer, got 0/);
      assert.throws(() => a.decode(randn([2, 16]), { steps: 1 }), /tokens have shape \[2, 16\].*\(B, 32\)/);
    }),
  );
  a.dispose();
  b.dispose();
});

test('interpolate: every frame is decoded from one shared noise; slerp keeps the norm between the endpoints', () => {
  const rt = RepTok.load({ tokenizer: files.tokenizer });
  noGrad(() =>
    tidy(() => {
      const g = new Generator({ seed: 2 });
      const ta = randn([32], { generator: g }).mul(0.5);
      const tb = randn([32], { generator: g }).mul(2);
      const { images: frames, tokens } = rt.interpolate(ta, tb, { frames: 5, steps: 2, seed: 9 });
      assert.deepEqual(frames.shape, [5, 3, 16, 16]);
      assert.ok(tokens.select(0, 0).allclose(ta, 1e-5, 1e-5) && tokens.select(0, 4).allclose(tb, 1e-5, 1e-5));
      // frame i is the decoding of token i from the noise of seed 9 — the same noise for every frame
      const noise = rt.noise(1, 9);
      for (let i = 0; i < 5; i++) {
        const alone = rt.decode(tokens.slice(0, i, i + 1), { steps: 2, noise });
        assert.ok(alone.allclose(frames.slice(0, i, i + 1), 1e-5, 1e-5), `frame ${i}`);
      }
      const [na, nb] = [ta.norm().item(), tb.norm().item()];
      const norms = tokens.norm(2, 1).toArray() as number[];
      for (const n of norms) assert.ok(n >= na - 1e-4 && n <= nb + 1e-4, `slerp norm ${n} outside [${na}, ${nb}]`);
      // a straight line between two nearly orthogonal tokens dips below both norms: what slerp avoids
      const lerp = interpolateTokens(ta.div(na), tb.div(nb), framePositions(3), 'lerp');
      assert.ok(lerp.select(0, 1).norm().item() < 0.9);
      const lerpFrames = rt.interpolate(ta, tb, { frames: 5, steps: 2, seed: 9, method: 'lerp' });
      assert.ok(lerpFrames.tokens.select(0, 2).allclose(ta.add(tb).div(2), 1e-5, 1e-5));
      assert.throws(
        () => rt.interpolate(ta, tb, { method: 'cubic' as InterpolationMethod }),
        /method must be one of slerp, lerp, got 'cubic'/,
      );
      // images as the endpoints: their tokens are the path's ends
      const x = images(2);
      const fromImages = rt.interpolate(x.select(0, 0), x.select(0, 1), { frames: 3, steps: 1 });
      assert.ok(fromImages.tokens.select(0, 0).allclose(rt.encode(x).select(0, 0), 1e-5, 1e-5));
      assert.throws(() => rt.interpolate(ta, tb, { frames: 1 }), /frames must be an integer ≥ 2/);
    }),
  );
  rt.dispose();
});

test('sample by class name or index; generate from prompts; inputs that do not fit are refused', () => {
  const rt = RepTok.load({ tokenizer: files.tokenizer, generator: files.generator });
  assert.deepEqual(rt.classes, TINY_CLASSES);
  const s = rt.sample({ classes: ['triangle', 0, '1'], n: 2, steps: 2, seed: 3 });
  assert.deepEqual(s.labels, [2, 2, 0, 0, 1, 1]);
  assert.deepEqual(s.images.shape, [6, 3, 16, 16]);
  assert.deepEqual(s.tokens.shape, [6, 32]);
  const again = rt.sample({ classes: ['triangle', 0, '1'], n: 2, steps: 2, seed: 3 });
  assert.ok(again.images.allclose(s.images, 0, 0), 'same seed, same samples');
  assert.equal(rt.sample({ steps: 1 }).labels.length, TINY_CLASSES.length, 'every class by default');
  assert.throws(() => rt.sample({ classes: ['dog'] }), /unknown class 'dog'; this generator's classes are 0=circle/);
  assert.throws(() => rt.sample({ classes: [3] }), /unknown class '3'/);
  assert.throws(() => rt.generate(['a circle']), /class-conditional .* takes no prompts/);
  // options that do not make sense are refused before any work, naming the option
  const bad: [SampleOptions, RegExp][] = [
    [{ classes: [] }, /classes is empty; name the classes, or leave classes out for every class/],
    [{ n: 0 }, /n must be a positive integer, got 0/],
    [{ n: 1.5 }, /n must be a positive integer, got 1\.5/],
    [{ guidance: NaN }, /guidance scale must be a number ≥ 0, got NaN/],
    [{ interval: [0.9, 0.3] }, /guidance interval must be two times a,b with 0 ≤ a ≤ b ≤ 1, got '0\.9,0\.3'/],
    [{ sampler: 'rk4' as SamplerName }, /sampler must be one of euler, heun, dopri5, got 'rk4'/],
    [{ batchSize: 0 }, /batchSize must be a positive integer, got 0/],
  ];
  for (const [o, message] of bad) assert.throws(() => rt.sample({ steps: 1, ...o }), message, JSON.stringify(o));

  const t2i = RepTok.load({ tokenizer: files.tokenizer, t2i: readFileSync(files.t2i) });
  const g = t2i.generate(['a red circle', 'a blue square'], { n: 2, steps: 2 });
  assert.deepEqual(g.images.shape, [4, 3, 16, 16]);
  assert.throws(() => t2i.sample({ classes: [0] }), /has a text-to-image model, not a class-conditional generator/);

  // a generator of another token width does not fit this tokenizer
  const wide = join(files.dir, 'wide-generator.safetensors');
  const m = noGrad(
    () =>
      new MLPMixer1D({
        tokenDim: 48,
        nTokens: 1,
        dim: 16,
        depth: 1,
        tokenMlpRatio: 2,
        channelMlpRatio: 2,
        numClasses: 2,
        classDropoutProb: 0.1,
        nExtraTokens: 0,
        dropout: 0,
      }),
  );
  saveGenerator(wide, m);
  assert.throws(
    () => RepTok.load({ tokenizer: files.tokenizer, generator: wide }),
    /makes tokens of width 48, but the tokenizer .* uses width 32/,
  );
  assert.throws(() => RepTok.load({ generator: files.generator }), /needs a tokenizer/);
  for (const x of [s, again, g]) for (const t of [x.images, x.tokens]) t.dispose();
  m.dispose();
  rt.dispose();
  t2i.dispose();
});

test('a pipeline packs its float32 weights for inference unless told not to; the samples agree', () => {
  const packed = RepTok.load({ tokenizer: files.tokenizer, generator: files.generator });
  const plain = RepTok.load({ tokenizer: files.tokenizer, generator: files.generator, packWeights: false });
  const before = weightCopies().packed.count;
  const b = plain.sample({ n: 2, steps: 2, seed: 4 });
  assert.equal(weightCopies().packed.count, before, 'packWeights: false keeps no packed copies');
  const a = packed.sample({ n: 2, steps: 2, seed: 4 });
  if (runtimeInfo().float32Matmul !== null)
    assert.ok(weightCopies().packed.count > before, 'the default pipeline samples on packed copies');
  // the same float32 products, summed in another order, through two ODE solves
  assert.ok(a.images.allclose(b.images, 1e-4, 1e-4), 'packed and plain samples agree');
  for (const x of [a, b]) for (const t of [x.images, x.tokens]) t.dispose();
  packed.dispose();
  plain.dispose();
  assert.equal(weightCopies().packed.count, before, 'disposing the pipeline frees its packed copies');
});

test("precision 'bf16' computes under autocast and returns float32; 'auto' follows the CPU; others are refused", () => {
  const fp32 = RepTok.load({ tokenizer: files.tokenizer, generator: files.generator });
  const bf16 = RepTok.load({ tokenizer: files.tokenizer, generator: files.generator, precision: 'bf16' });
  assert.deepEqual([fp32.precision, bf16.precision], ['fp32', 'bf16']);
  const a = fp32.sample({ n: 2, steps: 2, seed: 4 });
  const b = bf16.sample({ n: 2, steps: 2, seed: 4 });
  assert.deepEqual([b.images.dtype, b.tokens.dtype], ['float32', 'float32']);
  assert.ok(!b.tokens.allclose(a.tokens, 0, 0), 'bf16 computes in bf16');
  // bf16 rounding (2⁻⁹ relative) through the ODE solves of small random models: tokens of unit scale within 0.05,
  // images (clamped to [-1, 1]) within 0.1
  assert.ok(b.tokens.allclose(a.tokens, 0, 0.05), 'bf16 tokens stay near float32 ones');
  assert.ok(b.images.allclose(a.images, 0, 0.1), 'bf16 samples stay near float32 ones');
  const t = noGrad(() => bf16.encode(images(2)));
  assert.equal(t.dtype, 'float32');
  const auto = RepTok.load({ tokenizer: files.tokenizer, precision: 'auto' });
  assert.equal(auto.precision, bf16Support().native ? 'bf16' : 'fp32');
  assert.throws(
    () => RepTok.load({ tokenizer: files.tokenizer, precision: 'fp16' as 'fp32' }),
    /precision must be one of 'auto', 'fp32', 'bf16', got 'fp16'/,
  );
  for (const x of [a, b]) for (const u of [x.images, x.tokens]) u.dispose();
  t.dispose();
  for (const rt of [fp32, bf16, auto]) rt.dispose();
});
