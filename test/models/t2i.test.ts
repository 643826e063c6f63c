// Text-to-image: a tiny generator with the small text encoder learns a synthetic data set where the caption decides
// the target token ("red" -> one cluster, "blue" -> another); generated tokens land in the right cluster far more
// often than chance, and the guidance scale changes the outcome measurably.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Generator, cat, manualSeed, noGrad, randn, tensor, tidy } from '../../src/index.ts';
import { AdamW } from '../../src/optim/index.ts';
import { TextToImage } from '../../src/models/t2i.ts';
import { SmallTextEncoder } from '../../src/models/text/small-text-encoder.ts';
import { WordTokenizer } from '../../src/models/text/word-tokenizer.ts';
import { flowLoss, generate } from '../../src/flow/token-flow.ts';

const D = 8;
const centre = {
  red: tensor(Array.from({ length: D }, (_, i) => (i % 2 ? 1.5 : -1.5))),
  blue: tensor(Array.from({ length: D }, (_, i) => (i % 2 ? -1.5 : 1.5))),
};
const captions = ['a red dot', 'red', 'something red', 'a blue dot', 'blue', 'something blue'];

function build(): TextToImage {
  manualSeed(0);
  const tokenizer = WordTokenizer.fromCaptions(captions, { maxLength: 6 });
  const text = new SmallTextEncoder(tokenizer, { width: 32, depth: 1, heads: 2, maxLength: 6 });
  return noGrad(
    () =>
      new TextToImage(
        {
          tokenDim: D,
          nTokens: 1,
          dim: 48,
          depth: 2,
          heads: 2,
          tokenMlpRatio: 2,
          channelMlpRatio: 2,
          textDim: 32,
          textDropoutProb: 0.2,
        },
        text,
      ),
  );
}

/** Fraction of samples closer to their caption's centre than to the other one. */
function accuracy(model: TextToImage, prompts: string[], scale: number, g: Generator): number {
  return tidy(() =>
    noGrad(() => {
      const { z } = generate(model.field(prompts), randn([prompts.length, 1, D], { generator: g }), {
        steps: 10,
        guidance: { scale },
      });
      const x = z.squeeze(1);
      const dRed = x.sub(centre.red).norm(2, -1);
      const dBlue = x.sub(centre.blue).norm(2, -1);
      const isRed = tensor(prompts.map((p) => p.includes('red')));
      return dRed.lt(dBlue).eq(isRed).float().mean().item();
    }),
  );
}

test('captions steer generated tokens to their cluster; guidance strengthens the effect', () => {
  const model = build();
  const opt = new AdamW(model.parameters(), { lr: 2e-3, weightDecay: 0 });
  const g = new Generator({ seed: 1 });
  const B = 64;
  for (let step = 0; step < 300; step++) {
    tidy(() => {
      const idx = randn([B], { generator: g }).gt(0).toArray() as boolean[];
      const prompts = idx.map((red, i) => captions[(red ? 0 : 3) + (i % 3)]!);
      const x1 = cat(
        idx.map((red) => (red ? centre.red : centre.blue).add(randn([D], { generator: g }).mul(0.1)).reshape(1, 1, D)),
      );
      const text = model.encode(prompts, { train: true, generator: g });
      const { loss } = flowLoss((x, t) => model.generator.forward(x, t, text), x1, { generator: g });
      opt.zeroGrad();
      loss.backward();
      opt.step();
    });
  }
  model.eval();
  const prompts = Array.from({ length: 64 }, (_, i) => (i % 2 ? 'a red dot' : 'something blue'));
  const guided = accuracy(model, prompts, 2, new Generator({ seed: 7 }));
  const unguided = accuracy(model, prompts, 0, new Generator({ seed: 7 })); // scale 0 = the unconditional model
  assert.ok(guided > 0.9, `guided accuracy ${guided}`);
  assert.ok(unguided < 0.75, `with the text ignored (scale 0) the accuracy should be near chance, got ${unguided}`);
  assert.ok(guided - unguided > 0.2, `guided ${guided} vs unguided ${unguided}`);
});

test('prompts of any length are truncated and padded with masks, batched', () => {
  const model = build();
  const long = Array(50).fill('red').join(' ');
  tidy(() => {
    const enc = model.textEncoder.encodeText(['', 'blue', long]);
    assert.deepEqual(enc.states.shape, [3, 6, 32]);
    assert.deepEqual(enc.mask.toArray(), [
      [true, true, false, false, false, false],
      [true, true, true, false, false, false],
      [true, true, true, true, true, true],
    ]);
  });
});
