// What the stage context offers every stage: evaluation with the EMA weights in eval mode, restored afterwards even
// when the evaluation throws; sample pictures under <out>/samples; what the model files record.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { isGradEnabled, noGrad, rand, readImage } from '../../src/index.ts';
import { Linear } from '../../src/nn/index.ts';
import { EMA } from '../../src/optim/index.ts';
import { COMMON_DEFAULTS } from '../../src/train/config.ts';
import { StageContext } from '../../src/train/trainer.ts';

const config = { ...COMMON_DEFAULTS, stage: 'generator' as const, data: 'emoji', steps: 7 };

test('evaluate: EMA weights, eval mode and no gradients inside; trained weights and mode restored after', () => {
  const ctx = new StageContext(config, mkdtempSync(join(tmpdir(), 'reptok-ctx-')), { command: 'reptok train x' });
  const model = new Linear(2, 2);
  ctx.ema = new EMA(model, 0.5);
  noGrad(() => model.weight.add_(1)); // the trained weights move away from the EMA's
  const trained = model.weight.clone();
  const seen = ctx.evaluate(model, () => {
    assert.equal(model.training, false);
    assert.equal(isGradEnabled(), false);
    return model.weight.clone();
  });
  assert.ok(seen.allclose(ctx.ema.shadow.get('weight')!, 0, 0), 'evaluated with the EMA weights');
  assert.ok(model.weight.allclose(trained, 0, 0) && model.training, 'trained weights and train mode are back');
  assert.throws(() => ctx.evaluate(model, () => assert.fail('boom')), /boom/);
  assert.ok(model.weight.allclose(trained, 0, 0) && model.training, 'restored after a throw as well');
  model.eval();
  ctx.evaluate(model, () => 0);
  assert.equal(model.training, false, 'a module in eval mode stays in eval mode');
  assert.throws(() => ctx.evaluate(model, async () => 0), /must be synchronous/);
});

test('writeSamplePicture, trainingInfo and dataInfo', async () => {
  const ctx = new StageContext(config, mkdtempSync(join(tmpdir(), 'reptok-ctx-')), { command: 'reptok train x' });
  ctx.step = 6;
  const path = await ctx.writeSamplePicture(rand([4, 3, 5, 5]).mul(2).sub(1), 2);
  assert.equal(path, join(ctx.out, 'samples', 'step-000007.png'));
  assert.deepEqual((await readImage(path)).shape, [3, 2 * 7 + 2, 2 * 7 + 2]);
  assert.deepEqual(ctx.trainingInfo, { command: 'reptok train x', step: 7, config });
  const d = ctx.dataInfo({
    n: 1,
    c: 3,
    h: 8,
    w: 9,
    classes: ['a'],
    labels: new Int32Array(1),
    pixels: new Uint8Array(216),
  });
  assert.deepEqual(d, { name: 'emoji', imageSize: [8, 9], channels: 3, valueRange: [-1, 1], classes: ['a'] });
});
