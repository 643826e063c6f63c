// Generator parity with CompVis/RepTok on reptok/generator-tiny: mixer forward, classifier-free guidance with the
// null label, generation with a guidance interval, training and validation losses.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { noGrad, tidy } from '../../src/index.ts';
import { loadStateDictFile } from '../../src/io/checkpoint-file.ts';
import { MLPMixer1D, classField } from '../../src/models/generator.ts';
import { flowLoss, generate, validationLoss } from '../../src/flow/token-flow.ts';
import { guidedVelocity } from '../../src/flow/guidance.ts';
import { assertClose, loadFixture } from '../helpers.ts';

const fx = loadFixture('reptok/generator-tiny');
const tol = fx.config.tolerance;
const c = (k: string) => fx.cases.get(k)!;

function load(): MLPMixer1D {
  const m = fx.config.mixer;
  const model = noGrad(
    () =>
      new MLPMixer1D({
        tokenDim: m.channels,
        nTokens: m.n_channels,
        dim: m.dim,
        depth: m.depth,
        tokenMlpRatio: m.expansion_factor,
        channelMlpRatio: m.expansion_factor_token,
        numClasses: m.num_classes,
        classDropoutProb: m.class_dropout_prob,
        nExtraTokens: 0,
        dropout: 0,
      }),
  );
  model.loadStateDict(loadStateDictFile(fx.weightsPath), { context: fx.weightsPath });
  assert.equal(model.nullLabel, m.null_label);
  return model.eval();
}

test('forward (eval mode) matches', () => {
  const model = load();
  tidy(() =>
    noGrad(() =>
      assertClose(
        model.forward(c('forward.x'), c('forward.t'), { y: c('forward.y') }),
        c('forward.v'),
        tol,
        'forward.v',
      ),
    ),
  );
});

test('classifier-free guidance with the null label matches', () => {
  const model = load();
  tidy(() =>
    noGrad(() => {
      const v = guidedVelocity(classField(model, c('cfg.y')), c('cfg.x'), c('cfg.t'), c('cfg.cfg_scale').item());
      assertClose(v, c('cfg.v'), tol, 'cfg.v');
    }),
  );
});

test('Euler generation with a guidance interval matches', () => {
  const model = load();
  tidy(() =>
    noGrad(() => {
      const interval = c('generate.t_interval').toArray() as [number, number];
      const steps = c('generate.steps').item();
      const { z, nfe } = generate(classField(model, c('generate.y')), c('generate.noise'), {
        steps,
        guidance: { scale: c('generate.cfg_scale').item(), interval },
      });
      assertClose(z, c('generate.out'), tol, 'generate.out');
      assert.equal(nfe, steps);
    }),
  );
});

test('training and validation losses match', () => {
  const model = load();
  tidy(() =>
    noGrad(() => {
      const y = c('loss.y');
      const v = (x: ReturnType<typeof c>, t: ReturnType<typeof c>) => model.forward(x, t, { y });
      const out = flowLoss(v, c('loss.x1'), { x0: c('loss.x0'), t: c('loss.t') });
      assertClose(out.xt, c('loss.x_t'), tol, 'x_t');
      assertClose(out.ut, c('loss.u_t'), tol, 'u_t');
      assertClose(out.loss.reshape(1), c('loss.loss'), tol, 'loss');
      const segments = c('loss.val_segments').shape[0]!;
      const val = validationLoss(v, c('loss.x1'), { x0: c('loss.x0'), segments });
      assertClose(val.segments, c('loss.val_segments'), tol, 'val_segments');
      assertClose(val.loss.reshape(1), c('loss.val_loss'), tol, 'val_loss');
    }),
  );
});

test('label dropout replaces labels by the null label in training mode only', () => {
  const model = load();
  const emb = model.labelEmbedder!;
  tidy(() => {
    const y = c('forward.y').remainder(10).repeat(250); // 1000 real labels (the fixture's includes the null label 10)
    const nullRow = emb.embeddingTable.weight.select(0, model.nullLabel!);
    const dropped = emb.forward(y, true).sub(nullRow).abs().sum(-1).eq(0).float().mean().item();
    assert.ok(dropped > 0.06 && dropped < 0.14, `dropped ${dropped}`);
    assert.equal(emb.forward(y, false).sub(nullRow).abs().sum(-1).eq(0).float().mean().item(), 0);
  });
});
