// DINOv2 parity with facebookresearch/dinov2 and transformers on the reference fixtures (dinov2/*): the weights
// load as a user would load them, every case matches within the fixture's tolerance.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { noGrad, tidy } from '../../src/index.ts';
import {
  dinov2ConfigFromHub,
  detectDinov2Layout,
  inferDinov2Config,
  loadDinov2,
} from '../../src/models/dinov2-weights.ts';
import { loadSafetensors } from '../../src/io/index.ts';
import { DATA, assertClose, loadFixture } from '../helpers.ts';

const OUTPUTS = ['x_norm_clstoken', 'x_norm_regtokens', 'x_norm_patchtokens', 'x_prenorm'] as const;
const FIELD = {
  x_norm_clstoken: 'xNormClstoken',
  x_norm_regtokens: 'xNormRegtokens',
  x_norm_patchtokens: 'xNormPatchtokens',
  x_prenorm: 'xPrenorm',
} as const;

function caseNames(cases: Map<string, unknown>): string[] {
  return [...new Set([...cases.keys()].map((k) => k.split('.')[0]!))];
}

for (const name of ['dinov2/reg-tiny', 'dinov2/classic-tiny']) {
  test(`${name}: forward_features matches the official implementation on every case`, () => {
    const fx = loadFixture(name);
    const c = fx.config.constructor;
    // the head count is the one architecture fact weights cannot tell (the released models use 64-dim heads)
    const model = loadDinov2(fx.weightsPath, { overrides: { numHeads: c.num_heads } }).eval();
    assert.equal(model.config.numRegisterTokens, c.num_register_tokens);
    assert.equal(model.config.interpolateAntialias, c.interpolate_antialias);
    assert.equal(model.config.interpolateOffset, c.interpolate_offset);
    assert.equal(model.config.imgSize, c.img_size);
    const names = caseNames(fx.cases);
    assert.deepEqual(names.sort(), ['native518', 'rect', 'square224']);
    for (const cs of names) {
      tidy(() =>
        noGrad(() => {
          const out = model.forwardFeatures(fx.cases.get(`${cs}.pixel_values`)!);
          for (const o of OUTPUTS)
            assertClose(out[FIELD[o]], fx.cases.get(`${cs}.${o}`)!, fx.config.tolerance, `${name} ${cs} ${o}`);
        }),
      );
    }
    model.dispose();
  });
}

test('dinov2/hf-reg-tiny: the Hub (transformers) layout loads into the same model and matches', () => {
  const fx = loadFixture('dinov2/hf-reg-tiny');
  assert.equal(detectDinov2Layout(loadSafetensors(fx.weightsPath).tensors.keys()), 'hub');
  const model = loadDinov2(fx.weightsPath, { config: dinov2ConfigFromHub(fx.config.hf_config) }).eval();
  for (const cs of caseNames(fx.cases)) {
    tidy(() =>
      noGrad(() => {
        const out = model.forwardFeatures(fx.cases.get(`${cs}.pixel_values`)!);
        // transformers' last_hidden_state is the final-LayerNorm output of all tokens; pooler_output its [cls]
        const all = model.norm.forward(out.xPrenorm);
        assertClose(all, fx.cases.get(`${cs}.last_hidden_state`)!, fx.config.tolerance, `${cs} last_hidden_state`);
        assertClose(
          out.xNormClstoken,
          fx.cases.get(`${cs}.pooler_output`)!,
          fx.config.tolerance,
          `${cs} pooler_output`,
        );
      }),
    );
  }
});

// The released models are all plain-MLP but the giant, whose FFN is SwiGLU: a tiny random SwiGLU DINOv2 written by
// tools/reference/make_dinov2_swiglu.py (committed weights, inputs and outputs: committed data against committed data).
test('SwiGLU FFN (ViT-g): a tiny random SwiGLU DINOv2 matches the reference formulation', () => {
  const { tensors: cases, metadata } = loadSafetensors(join(DATA, 'dinov2-swiglu-tiny.cases.safetensors'));
  const c = JSON.parse(metadata.config!);
  const tol = JSON.parse(metadata.tolerance!);
  const model = loadDinov2(join(DATA, 'dinov2-swiglu-tiny.safetensors'), { overrides: { numHeads: c.num_heads } });
  model.eval();
  assert.equal(model.config.ffn, 'swiglu');
  assert.equal(model.config.imgSize, c.img_size);
  assert.equal(model.config.numRegisterTokens, c.num_register_tokens);
  tidy(() =>
    noGrad(() => {
      const pixels = cases.get('pixel_values')!;
      const out = model.forwardFeatures(pixels);
      for (const o of OUTPUTS) assertClose(out[FIELD[o]], cases.get(o)!, tol, `swiglu ${o}`);
      // forward() runs the last block (SwiGLU included) on the [cls] row alone
      assertClose(model.forward(pixels), cases.get('x_norm_clstoken')!, tol, 'swiglu forward ([cls] only)');
    }),
  );
  model.dispose();
});

test('both layouts of the same weights give identical models', () => {
  const official = loadDinov2(loadFixture('dinov2/reg-tiny').weightsPath, { overrides: { numHeads: 3 } });
  const hub = loadDinov2(loadFixture('dinov2/hf-reg-tiny').weightsPath, { overrides: { numHeads: 3 } });
  for (const [k, v] of official.stateDict()) assert.ok(v.equal(hub.stateDict().get(k)!), k);
});

test('the architecture is inferred from the weights (registers, resize method, depth, FFN)', () => {
  const sd = loadSafetensors(loadFixture('dinov2/classic-tiny').weightsPath).tensors;
  const c = inferDinov2Config(sd);
  assert.deepEqual(
    { ...c, numHeads: 3 },
    {
      imgSize: 518,
      patchSize: 14,
      inChans: 3,
      embedDim: 48,
      depth: 2,
      numHeads: 3,
      mlpRatio: 4,
      ffn: 'mlp',
      qkvBias: true,
      initValues: 1,
      numRegisterTokens: 0,
      interpolateAntialias: false,
      interpolateOffset: 0.1,
      layerNormEps: 1e-6,
    },
  );
});
