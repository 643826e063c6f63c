// Finite-difference gradient checks in float64 for the differentiable operator set.
import { test } from 'node:test';

import { F, Generator, Tensor, cat, einsum, randn, rand, stack, tensor, where } from '../../src/index.ts';
import { gradcheck } from '../helpers.ts';

const g = new Generator({ seed: 42 });
const r = (...s: number[]): Tensor => randn(s, { dtype: 'float64', generator: g });
const p = (...s: number[]): Tensor => rand(s, { dtype: 'float64', generator: g }).add(0.5);
const idx = (v: number[]): Tensor => tensor(v, { dtype: 'int64' });

const CHECKS: [string, (...x: Tensor[]) => Tensor, Tensor[]][] = [
  [
    'arithmetic',
    (a, b) =>
      a
        .mul(b)
        .sub(a.div(b.add(3)))
        .add(b.pow(2)),
    [r(2, 3), r(3)],
  ],
  ['transcendental', (a) => a.exp().add(a.tanh()).add(a.sigmoid()).add(a.erf()).add(a.sin().mul(a.cos())), [r(2, 3)]],
  ['log/sqrt/rsqrt/pow', (a) => a.log().add(a.sqrt()).add(a.rsqrt()).add(a.pow(1.7)).add(a.reciprocal()), [p(5)]],
  [
    'lerp/clamp/where',
    (a, b) =>
      a
        .lerp(b, 0.3)
        .add(a.clamp(-0.5, 0.5))
        .add(where(a.gt(0), a, b)),
    [r(6), r(6)],
  ],
  ['gelu/silu', (a) => F.gelu(a).add(F.gelu(a, 'tanh')).add(F.silu(a)), [r(2, 4)]],
  ['softmax/logSoftmax/logsumexp', (a) => a.softmax(-1).add(a.logSoftmax(0)).sum(-1).add(a.logsumexp(1)), [r(3, 4)]],
  ['reductions', (a) => a.var(1).add(a.std(1)).add(a.mean(1)).add(a.norm(2, 1)).add(a.max(1).values), [r(3, 5)]],
  [
    'matmul/linear/einsum',
    (a, b, c) => F.linear(a.matmul(b), c).add(einsum('ij,kj->ik', a, c.matmul(b.mT))),
    [r(2, 3), r(3, 4), r(5, 4)],
  ],
  ['layerNorm', (x, w, b) => F.layerNorm(x, [4], w, b, 1e-6), [r(2, 3, 4), r(4), r(4)]],
  ['groupNorm', (x, w, b) => F.groupNorm(x, 2, w, b), [r(2, 4, 2, 2), r(4), r(4)]],
  ['conv2d', (x, w, b) => F.conv2d(x, w, b, { stride: 2, padding: 1 }), [r(1, 2, 5, 5), r(3, 2, 3, 3), r(3)]],
  ['convTranspose2d', (x, w) => F.convTranspose2d(x, w, null, { stride: 2 }), [r(1, 2, 3, 3), r(2, 2, 2, 2)]],
  ['avgPool2d', (x) => F.avgPool2d(x, 2), [r(1, 1, 4, 4)]],
  ['interpolate bilinear', (x) => F.interpolate(x, { size: [5, 3], mode: 'bilinear' }), [r(1, 1, 3, 4)]],
  [
    'interpolate bicubic (scale factor)',
    (x) => F.interpolate(x, { scaleFactor: 0.6, mode: 'bicubic' }),
    [r(1, 1, 5, 5)],
  ],
  [
    'interpolate bicubic antialias',
    (x) => F.interpolate(x, { size: [2, 3], mode: 'bicubic', antialias: true }),
    [r(1, 1, 5, 6)],
  ],
  [
    'sdpa with mask',
    (q, k, v) =>
      F.scaledDotProductAttention(q, k, v, {
        mask: tensor([
          [true, false, true],
          [true, true, false],
        ]),
      }),
    [r(1, 2, 4), r(1, 3, 4), r(1, 3, 4)],
  ],
  [
    'losses',
    (a, b) =>
      F.mseLoss(a, b)
        .add(F.crossEntropy(a, idx([1, 0, 3])))
        .add(F.cosineSimilarity(a, b).sum()),
    [r(3, 4), r(3, 4)],
  ],
  [
    'indexing',
    (a) =>
      a
        .gather(1, idx([0, 2, 1]).reshape(3, 1))
        .sum()
        .add(a.indexSelect(0, idx([2, 0])).sum())
        .add(a.maskedFill(a.gt(0.5), 0).sum()),
    [r(3, 3)],
  ],
  [
    'cat/stack/roll/flip/permute',
    (a, b) =>
      cat([a, b], 0)
        .roll(1, 0)
        .flip(1)
        .add(stack([a, b], 0).sum(0).repeat(2, 1))
        .permute(1, 0),
    [r(2, 3), r(2, 3)],
  ],
  ['embedding weight', (w) => F.embedding(idx([1, 3, 1]), w), [r(4, 2)]],
  ['normalize', (x) => F.normalize(x, 2, -1), [r(3, 4)]],
];

for (const [name, fn, inputs] of CHECKS) {
  test(`gradcheck: ${name}`, () => gradcheck(fn, inputs, { what: name }));
}
