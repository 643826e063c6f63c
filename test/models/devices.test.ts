// Device-agnostic model code: every tensor the models create while running (time grids, noise, positions, masks,
// text ids) names its device, taken from the inputs or the weights, so the same code runs on CUDA (or any device)
// with no CPU tensor in between. Checked on the CPU by requiring an explicit device from every tensor factory while
// the models train, validate and sample (`withExplicitDevices`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Generator, manualSeed, noGrad, randn, tensor, tidy, withExplicitDevices, zeros } from '../../src/index.ts';
import { RepTokTokenizer } from '../../src/models/tokenizer.ts';
import { MLPMixer1D, classField } from '../../src/models/generator.ts';
import { TextToImage } from '../../src/models/t2i.ts';
import { SmallTextEncoder } from '../../src/models/text/small-text-encoder.ts';
import { WordTokenizer } from '../../src/models/text/word-tokenizer.ts';
import { flowLoss, generate, validationLoss } from '../../src/flow/token-flow.ts';
import { resolveTrainConfig } from '../../src/train/presets.ts';
import { generatorPreset, t2iPreset } from '../../src/train/stages/generator.ts';
import { tinyConfigs } from '../train/fixtures.ts';

test('the factory check itself: a tensor made without a device fails inside the check, not outside', () => {
  assert.throws(() => withExplicitDevices(() => zeros([2])), /created without a device inside model code/);
  assert.doesNotThrow(() => withExplicitDevices(() => zeros([2], { device: 'cpu' })));
  zeros([2]).dispose();
});

test('the tokenizer creates every tensor on its inputs’ device (loss, backward, decode)', () => {
  manualSeed(0);
  const file = join(mkdtempSync(join(tmpdir(), 'reptok-dev-')), 'tok.json');
  writeFileSync(file, JSON.stringify(tinyConfigs('fashion-mnist').tokenizer));
  const c = resolveTrainConfig('tokenizer', 'fmnist-tokenizer', { file }) as any;
  const tok = noGrad(() => new RepTokTokenizer(c.tokenizer));
  const images = randn([2, 3, 16, 16]).tanh();
  const g = new Generator({ seed: 1 });
  withExplicitDevices(() =>
    tidy(() => {
      tok.loss(images, { generator: g }).total.backward();
      const out = tok.decode(tok.encode(images), { steps: 2, generator: g });
      assert.deepEqual(out.images.shape, [2, 3, 16, 16]);
    }),
  );
  tok.dispose();
});

test('the class generator and the text-to-image model create every tensor on their device', () => {
  manualSeed(0);
  const { tokenDim: _t, numClasses: _n, ...mixer } = { ...generatorPreset('fashion-mnist').generator } as any;
  const model = noGrad(() => new MLPMixer1D({ ...mixer, dim: 32, depth: 1, tokenDim: 8, numClasses: 3 }));
  const words = WordTokenizer.fromCaptions(['a red dot', 'a blue dot'], { maxLength: 4 });
  const text = new SmallTextEncoder(words, { width: 16, depth: 1, heads: 2, maxLength: 4 });
  const t2i = noGrad(
    () => new TextToImage({ ...t2iPreset('emoji').t2i, dim: 32, depth: 1, heads: 2, tokenDim: 8, textDim: 16 }, text),
  );
  const x1 = randn([4, 1, 8]);
  const y = tensor([0, 1, 2, 0], { dtype: 'int64' });
  const g = new Generator({ seed: 1 });
  withExplicitDevices(() =>
    tidy(() => {
      flowLoss((x, t) => model.forward(x, t, { y, generator: g }), x1, { generator: g }).loss.backward();
      validationLoss((x, t) => model.forward(x, t, { y }), x1, { generator: g, segments: 2 });
      generate(classField(model, y), randn([4, 1, 8], { generator: g, device: 'cpu' }), {
        steps: 2,
        guidance: { scale: 1.5, interval: [0.3, 0.9] },
      });
      const enc = t2i.encode(['a red dot', 'blue', 'red', 'a dot'], { train: true, generator: g });
      flowLoss((x, t) => t2i.generator.forward(x, t, enc), x1, { generator: g }).loss.backward();
      generate(t2i.field(['red', 'blue', 'a dot', 'dot']), randn([4, 1, 8], { generator: g, device: 'cpu' }), {
        steps: 2,
        guidance: { scale: 1.5 },
      });
    }),
  );
});
