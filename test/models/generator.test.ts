// The generator's token-mixing MLP on the fused kernel (reptok::token_mlp) against the layer-by-layer path: the
// velocity and every parameter gradient of a small random generator agree with fused kernels on and off, with and
// without extra context tokens; active dropout (training, p > 0) runs the layers one by one. And mixTokens, which
// runs the last block past its token mixing on the returned tokens only, equals the whole mixer, sliced.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  Generator,
  Tensor,
  grad,
  manualSeed,
  noGrad,
  profile,
  rand,
  randint,
  randn,
  setFusedKernels,
  tidy,
} from '../../src/index.ts';
import { generatorModel, type MLPMixer1D } from '../../src/models/generator.ts';
import { assertClose } from '../helpers.ts';

const g = new Generator({ seed: 3 });

function tinyGenerator(nExtraTokens: number, dropout = 0): MLPMixer1D {
  manualSeed(11);
  return noGrad(() => generatorModel('mixer-tiny', { nExtraTokens, dropout }));
}

/** Velocity and the gradients of Σ w·v with respect to every parameter, fused kernels on or off. */
function velocityAndGrads(model: MLPMixer1D, fused: boolean, inputs: Tensor[]): Tensor[] {
  const [x, t, y, context, w] = inputs as [Tensor, Tensor, Tensor, Tensor | undefined, Tensor];
  const previous = setFusedKernels(fused);
  manualSeed(5); // the same label dropout in both runs
  try {
    return tidy(() => {
      const v = model.forward(x, t, { y, context });
      return [v.detach(), ...(grad([v], model.parameters(), { gradOutputs: [w] }) as Tensor[])];
    });
  } finally {
    setFusedKernels(previous);
  }
}

const tokenMlpRuns = (fn: () => void): number =>
  profile(fn)
    .ops.filter((o) => o.name.startsWith('reptok::token_mlp'))
    .reduce((n, o) => n + o.calls, 0);

test('generator: velocity and parameter gradients equal with the fused token mixing on and off (0 and 4 extra tokens)', () => {
  for (const extra of [0, 4]) {
    const model = tinyGenerator(extra).train();
    const [B, C] = [5, model.config.tokenDim];
    const inputs = [
      randn([B, 1, C], { generator: g }),
      rand([B], { generator: g }),
      randint(0, 11, [B], { generator: g }), // 10 classes and the null label
      extra ? randn([B, extra, C], { generator: g }) : undefined,
      randn([B, 1, C], { generator: g }),
    ] as Tensor[];
    const fused = velocityAndGrads(model, true, inputs);
    const composite = velocityAndGrads(model, false, inputs);
    const names = [...model.namedParameters()].map(([n]) => n);
    fused.forEach((t, i) =>
      assertClose(
        t,
        composite[i]!,
        { atol: 2e-5, rtol: 1e-4 },
        `${extra} extra tokens: ${i ? names[i - 1] : 'velocity'}`,
      ),
    );
    assert.equal(
      tokenMlpRuns(() => velocityAndGrads(model, true, inputs)),
      model.config.depth,
      'one fused token MLP per block',
    );
  }
});

test('generator: dropout in training runs the token-mixing layers one by one; in eval mode the fused kernel', () => {
  const model = tinyGenerator(0, 0.1).train();
  const B = 3;
  const forward = () =>
    tidy(() => void model.forward(randn([B, 1, model.config.tokenDim]), rand([B]), { y: randint(0, 10, [B]) }));
  assert.equal(
    tokenMlpRuns(() => noGrad(forward)),
    0,
    'training with dropout 0.1: no fused token MLP',
  );
  model.eval();
  assert.equal(
    tokenMlpRuns(() => noGrad(forward)),
    model.config.depth,
    'eval mode: the fused token MLP in each block',
  );
});

test('generator: mixTokens (the last block past its token mixing on the returned tokens only) = the whole mixer, sliced', () => {
  for (const [extra, depth] of [
    [0, 2],
    [4, 1],
    [0, 0],
  ] as const) {
    manualSeed(11);
    const model = noGrad(() => generatorModel('mixer-tiny', { nExtraTokens: extra, depth })).train();
    const xs = randn([3, extra + 3, model.config.tokenDim], { generator: g });
    const w = randn([3, 1, model.config.tokenDim], { generator: g });
    const params = model.parameters();
    const [sliced, whole] = [
      () => model.mixTokens(xs, extra, 1),
      () => model.mixer.forward(xs).slice(1, extra, extra + 1),
    ].map((f) =>
      tidy(() => {
        const v = f();
        return [v.detach(), ...(grad([v], params, { gradOutputs: [w], allowUnused: true }) as (Tensor | null)[])];
      }),
    );
    sliced!.forEach((t, i) => {
      const what = `${extra} extra tokens, depth ${depth}: ${i ? `gradient ${i}` : 'tokens'}`;
      if (t === null || whole![i] === null) assert.equal(t, whole![i], what);
      else assertClose(t, whole![i]!, { atol: 1e-5, rtol: 1e-5 }, what);
    });
  }
});
