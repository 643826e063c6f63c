// Tokenizer parity with CompVis/RepTok on reptok/tokenizer-tiny: token, cosine loss, adapted token, time
// conditioning, predicted velocity, losses, the gradient of the total loss for every trainable parameter, and the
// 4-step Euler sample — with the fixture's checkpoint loaded as a user would load a released one.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { AdamW } from '../../src/optim/index.ts';
import { noGrad, tidy, zeros } from '../../src/index.ts';
import { loadStateDictFile } from '../../src/io/checkpoint-file.ts';
import { RepTokTokenizer, type TokenizerConfig } from '../../src/models/tokenizer.ts';
import { assertClose, loadFixture } from '../helpers.ts';

const fx = loadFixture('reptok/tokenizer-tiny');
const tol = fx.config.tolerance;
const get = (k: string) => {
  const t = fx.cases.get(k);
  assert.ok(t, `fixture case ${k} missing`);
  return t;
};

function fixtureConfig(): TokenizerConfig {
  const d = fx.config.dino;
  const dec = fx.config.decoder;
  return {
    encoder: {
      imgSize: 518,
      patchSize: d.patch_size,
      inChans: 3,
      embedDim: d.embed_dim,
      depth: d.depth,
      numHeads: d.num_heads,
      mlpRatio: 4,
      ffn: 'mlp',
      qkvBias: true,
      initValues: 1,
      numRegisterTokens: d.num_register_tokens,
      interpolateAntialias: d.interpolate_antialias,
      interpolateOffset: d.interpolate_offset,
      layerNormEps: d.layer_norm_eps,
    },
    encoderInputSize: d.model_size,
    trainable: 'cls',
    newRegisters: dec.nr_new_reg,
    decoder: {
      width: dec.width,
      depth: dec.depth,
      dHead: dec.d_head,
      ffExpand: dec.ff_expand,
      patchSize: dec.patch_size,
    },
    mapping: { width: dec.mapping.width, depth: dec.mapping.depth, dFF: dec.mapping.d_ff },
    space: 'pixel', // the fixture feeds latents directly (no VAE in it): a 4-channel "pixel" grid of 8×8
    imageSize: [dec.latent_shape[1], dec.latent_shape[2]],
    imageChannels: dec.latent_shape[0],
    vae: null,
    cosWeight: 1,
    timeSampler: { kind: 'logit-normal' },
  };
}

function load(): RepTokTokenizer {
  const model = noGrad(() => new RepTokTokenizer(fixtureConfig()));
  model.loadReferenceStateDict(loadStateDictFile(fx.weightsPath), { context: fx.weightsPath });
  return model.train();
}

test('training forward: token, losses, conditioning and velocity match', () => {
  const model = load();
  tidy(() => {
    const out = model.loss(get('train.images'), {
      grid: get('train.latent'),
      noise: get('train.noise'),
      t: get('train.t'),
    });
    assertClose(out.token, get('train.token'), tol, 'token');
    assertClose(out.cos, get('train.cos_loss'), tol, 'cos_loss');
    assertClose(out.zt, get('train.z_t'), tol, 'z_t');
    assertClose(out.condNorm, get('train.cond_norm'), tol, 'cond_norm');
    assertClose(out.condTokens, get('train.cond_tokens'), tol, 'cond_tokens (adapted token)');
    assertClose(out.condPos, get('train.cond_pos'), tol, 'cond_pos');
    assertClose(out.vPred, get('train.v_pred'), tol, 'v_pred');
    assertClose(out.rf, get('train.rf_loss'), tol, 'rf_loss');
    assertClose(out.total.reshape(1), get('train.total_loss'), tol, 'total_loss');
  });
});

test('gradients of the total loss match for every trainable parameter', () => {
  const model = load();
  const trainable: string[] = fx.config.trainable;
  const ours = new Set(model.trainableParameters().map(([n]) => n));
  assert.deepEqual([...ours].sort(), [...trainable].sort(), 'the same parameters train');
  tidy(() =>
    model
      .loss(get('train.images'), { grid: get('train.latent'), noise: get('train.noise'), t: get('train.t') })
      .total.backward(),
  );
  const params = new Map(model.namedParameters());
  const gtol = { atol: tol.grad_atol, rtol: tol.grad_rtol };
  for (const name of trainable) {
    const p = params.get(name)!;
    tidy(() => assertClose(p.grad ?? zeros(p.shape), get(`train.grad.${name}`), gtol, `grad ${name}`));
  }
});

test('4-step Euler sampling from the given noise matches', () => {
  const model = load().eval();
  tidy(() => {
    const steps = get('sample.steps').item();
    const { grid, nfe } = model.decode(get('sample.token'), { noise: get('sample.noise'), steps, sampler: 'euler' });
    assert.equal(nfe, steps);
    assertClose(grid, get('sample.latent_out'), tol, 'sample.latent_out');
  });
});

test('one optimisation step changes exactly the trainable parameters; the frozen ViT stays bit-identical', () => {
  const model = load();
  const before = new Map([...model.stateDict()].map(([k, v]) => [k, v.clone()]));
  const opt = new AdamW(
    model.trainableParameters().map(([, p]) => p),
    { lr: 1e-2, weightDecay: 0 },
  );
  tidy(() =>
    model
      .loss(get('train.images'), { grid: get('train.latent'), noise: get('train.noise'), t: get('train.t') })
      .total.backward(),
  );
  opt.step();
  const trainable = new Set(model.trainableParameters().map(([n]) => n));
  for (const [k, v] of model.stateDict()) {
    const same = v.equal(before.get(k)!);
    // new_reg never influences the output (its gradient is zero), so even a trainable parameter may stay put
    if (trainable.has(k) && k !== 'encoder.dino.new_reg') assert.ok(!same, `${k} should have changed`);
    if (!trainable.has(k)) assert.ok(same, `${k} must not change`);
  }
});

test('a checkpoint whose target differs from the encoder is refused in shared-target mode', () => {
  const sd = loadStateDictFile(fx.weightsPath);
  sd.set(
    'encoder.dino.target_model.blocks.0.norm1.weight',
    sd.get('encoder.dino.target_model.blocks.0.norm1.weight')!.add(1),
  );
  const model = new RepTokTokenizer(fixtureConfig());
  assert.throws(
    () => model.loadReferenceStateDict(sd),
    /frozen target differs from the encoder at 'encoder\.dino\.target_model\.blocks\.0\.norm1\.weight'.*last:N/,
  );
});
