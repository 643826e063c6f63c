// AutoencoderKL parity with diffusers on vae/autoencoderkl-tiny: posterior mean/logvar, decoded images and the
// mode round trip, loading the diffusers-layout weights as they are.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Tensor, noGrad, randn, tidy } from '../../src/index.ts';
import { loadSafetensors } from '../../src/io/index.ts';
import { AutoencoderKL, vaeConfigFromDiffusers } from '../../src/models/vae.ts';
import { assertClose, loadFixture } from '../helpers.ts';

const fx = loadFixture('vae/autoencoderkl-tiny');

/** The fixture's weights in the current diffusers layout, or renamed to the older one (query/key/value/proj_attn). */
function weights(layout: 'current' | 'older'): Map<string, Tensor> {
  const sd = loadSafetensors(fx.weightsPath).tensors;
  if (layout === 'current') return sd;
  const older = new Map(
    [...sd].map(([k, v]) => [
      k
        .replace(/\.to_(q|k|v)\./, (_, x: string) => `.${{ q: 'query', k: 'key', v: 'value' }[x]}.`)
        .replace(/\.to_out\.0\./, '.proj_attn.'),
      v,
    ]),
  );
  assert.ok(
    [...older.keys()].some((k) => k.endsWith('.proj_attn.weight')) &&
      ![...older.keys()].some((k) => k.includes('.to_q.')),
  );
  return older;
}

function load(layout: 'current' | 'older' = 'current'): AutoencoderKL {
  const vae = noGrad(() => new AutoencoderKL(vaeConfigFromDiffusers(fx.config.diffusers_config)));
  vae.loadStateDict(weights(layout), { context: fx.weightsPath });
  return vae.eval();
}

for (const layout of ['current', 'older'] as const)
  test(`encode gives the posterior, decode the images (diffusers AutoencoderKL, ${layout} attention names)`, () => {
    const vae = load(layout);
    tidy(() =>
      noGrad(() => {
        const post = vae.encode(fx.cases.get('vae.images')!);
        assertClose(post.mean, fx.cases.get('vae.posterior_mean')!, fx.config.tolerance, 'posterior mean');
        assertClose(post.logvar, fx.cases.get('vae.posterior_logvar')!, fx.config.tolerance, 'posterior logvar');
        assertClose(
          vae.decode(fx.cases.get('vae.latents')!),
          fx.cases.get('vae.decoded')!,
          fx.config.tolerance,
          'decoded',
        );
        assertClose(
          vae.decode(post.mean),
          fx.cases.get('vae.roundtrip_mode')!,
          fx.config.tolerance,
          'round trip (mode)',
        );
      }),
    );
  });

test('tiled decoding covers the whole image and agrees with direct decoding away from tile seams', () => {
  const vae = load();
  tidy(() =>
    noGrad(() => {
      const z = randn([1, 4, 12, 12]);
      const direct = vae.decode(z);
      const tiled = vae.decodeTiled(z);
      assert.deepEqual(tiled.shape, direct.shape);
      // tiles of sample_size / 4 = 8 latents; the first tile's top-left 24×24 pixels are not blended with any other
      const tile = vae.decode(z.slice(2, 0, 8).slice(3, 0, 8));
      assertClose(
        tiled.slice(2, 0, 24).slice(3, 0, 24),
        tile.slice(2, 0, 24).slice(3, 0, 24),
        { atol: 1e-5, rtol: 1e-5 },
        'first tile',
      );
    }),
  );
});

test('posterior samples are mean + std·ε', () => {
  const vae = load();
  tidy(() =>
    noGrad(() => {
      const post = vae.encode(fx.cases.get('vae.images')!);
      const s = AutoencoderKL.sample(post);
      assert.deepEqual(s.shape, post.mean.shape);
      assert.ok(!s.equal(post.mean));
    }),
  );
});
