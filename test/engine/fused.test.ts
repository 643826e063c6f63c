// The fused kernels (native/kernels/: rmsNorm, swiglu, cosineRopeQK, attention) and the oneDNN linear
// (native/kernels/linear.cc) against the ATen ops they replace: forward and every gradient in float32, finite
// differences in float64, bad inputs, and the double-backward refusal.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  F,
  Generator,
  Tensor,
  aten,
  autocast,
  grad,
  profile,
  rand,
  randn,
  runtimeInfo,
  setFusedKernels,
  tidy,
} from '../../src/index.ts';
import { assertClose, gradcheck, onednnAbsent } from '../helpers.ts';

const g = new Generator({ seed: 7 });
const r = (s: number[], dtype: 'float32' | 'float64' = 'float32'): Tensor => randn(s, { dtype, generator: g });

/** Output and gradients of `fn` w.r.t. `inputs`, with fused kernels on or off. */
function run(fused: boolean, fn: (...x: Tensor[]) => Tensor, inputs: Tensor[], gOut: Tensor): Tensor[] {
  const previous = setFusedKernels(fused);
  try {
    return tidy(() => {
      const xs = inputs.map((x) => x.detach().requiresGrad_(true));
      const y = fn(...xs);
      return [y.detach(), ...(grad([y], xs, { gradOutputs: [gOut] }) as Tensor[])];
    });
  } finally {
    setFusedKernels(previous);
  }
}

function compare(name: string, fn: (...x: Tensor[]) => Tensor, inputs: Tensor[], outShape: number[]): void {
  const gOut = r(outShape);
  const fused = run(true, fn, inputs, gOut);
  const composite = run(false, fn, inputs, gOut);
  fused.forEach((t, i) =>
    assertClose(t, composite[i]!, { atol: 2e-5, rtol: 1e-4 }, `${name}: ${i ? `gradient ${i}` : 'output'}`),
  );
}

// cosineRopeQK returns (q, k); one tensor for the checks: q + 2k, so both gradients flow
const qk = (qkv: Tensor, s: Tensor, cos: Tensor, sin: Tensor): Tensor => {
  const [q, k] = F.cosineRopeQK(qkv, s, cos, sin);
  return q.add(k.mul(2));
};
const theta = (B: number, H: number, L: number, d: number, dtype: 'float32' | 'float64' = 'float32') => {
  const t = r([B, H, L, d], dtype).mul(3);
  return [t.cos(), t.sin()];
};

test('rmsNorm: fused = composite, shared scale (W) and per-sample scale (B, 1, W)', () => {
  compare('rmsNorm (W)', (x, s) => F.rmsNorm(x, s), [r([3, 5, 16]), r([16])], [3, 5, 16]);
  compare('rmsNorm (B,1,W)', (x, s) => F.rmsNorm(x, s, 1e-6), [r([3, 5, 16]), r([3, 1, 16])], [3, 5, 16]);
  compare('rmsNorm, 2-D x', (x, s) => F.rmsNorm(x, s), [r([7, 130]), r([130])], [7, 130]);
  compare(
    'rmsNorm, elementwise scale (composite on both sides)',
    (x, s) => F.rmsNorm(x, s),
    [r([2, 3, 8]), r([2, 3, 8])],
    [2, 3, 8],
  );
});

test('swiglu: fused = composite, including large gates (the fast exp saturates cleanly)', () => {
  compare('swiglu', (h) => F.swiglu(h), [r([3, 5, 2 * 37])], [3, 5, 37]);
  compare('swiglu, large values', (h) => F.swiglu(h), [r([4, 2 * 64]).mul(40)], [4, 64]);
});

test('cosineRopeQK: fused = composite (q, k, d·2 < e and d·2 = e)', () => {
  const [c, s] = theta(2, 3, 5, 4);
  compare(
    'cosineRopeQK',
    (qkv, sc) => qk(qkv, sc, c!, s!),
    [r([2, 5, 3, 3, 16]), rand([3], { generator: g }).mul(10).add(0.5)],
    [2, 3, 5, 16],
  );
  const [c2, s2] = theta(1, 2, 4, 8);
  compare(
    'cosineRopeQK full rotation',
    (qkv, sc) => qk(qkv, sc, c2!, s2!),
    [r([1, 4, 3, 2, 16]), rand([2], { generator: g }).add(1)],
    [1, 2, 4, 16],
  );
});

// q, k, v as the strided views of a qkv projection that the models pass (B, L, 3, H, e) -> 3 × (B, H, L, e)
const qkvViews = (qkv: Tensor): Tensor[] => qkv.permute(2, 0, 3, 1, 4).unbind(0);

test('attention: fused = composite for strided q, k, v views, cross-attention lengths, odd head dims', () => {
  const sdpa = (scale?: number) => (qkv: Tensor) => {
    const [q, k, v] = qkvViews(qkv) as [Tensor, Tensor, Tensor];
    return F.scaledDotProductAttention(q, k, v, { scale });
  };
  compare('attention (views of qkv)', sdpa(), [r([2, 21, 3, 3, 16])], [2, 3, 21, 16]);
  compare('attention, scale 1, 65 tokens (the vector tails)', sdpa(1), [r([1, 65, 3, 2, 24]).mul(0.5)], [1, 2, 65, 24]);
  compare(
    'attention, Lq ≠ Lk, e = 5',
    (q, k, v) => F.scaledDotProductAttention(q, k, v),
    [r([2, 2, 3, 5]), r([2, 2, 9, 5]), r([2, 2, 9, 5])],
    [2, 2, 3, 5],
  );
  compare(
    'attention, large logits (softmax stays finite)',
    (q, k, v) => F.scaledDotProductAttention(q, k, v, { scale: 30 }),
    [r([1, 1, 4, 8]), r([1, 1, 6, 8]), r([1, 1, 6, 8])],
    [1, 1, 4, 8],
  );
});

// The one optional capability: without a shared oneDNN, F.linear is aten::linear and there is nothing to compare.
test('linear on oneDNN: = aten::linear (bias or not, any leading dims, transposed weights); a reptok:: op', (t) => {
  if (!runtimeInfo().onednnGemm) return t.skip(onednnAbsent());
  compare('linear + bias', (x, w, b) => F.linear(x, w, b), [r([4, 9, 24]), r([40, 24]), r([40])], [4, 9, 40]);
  compare('linear, 2-D, no bias', (x, w) => F.linear(x, w), [r([7, 17]), r([16, 17])], [7, 16]);
  compare(
    'linear, weight a transposed view',
    (x, w) => F.linear(x, w.transpose(0, 1)),
    [r([2, 3, 20]), r([20, 18])],
    [2, 3, 18],
  );
  compare('linear, one row', (x, w, b) => F.linear(x, w, b), [r([1, 16]), r([24, 16]), r([24])], [1, 24]);
  const x = r([3, 16]);
  const bf16 = autocast(() => tidy(() => F.linear(x, r([16, 16])).dtype));
  assert.equal(bf16, 'bfloat16', 'under autocast the linear runs in bfloat16');
  const { ops } = profile(() => tidy(() => void F.linear(r([2, 16]), r([16, 16]))));
  assert.ok(
    ops.some((o) => o.name.startsWith('reptok::linear')),
    `profile lists ${ops.map((o) => o.name).join(', ')}`,
  );
  assert.throws(
    () => aten('reptok::linear', r([2, 5]), r([3, 4]), null),
    /reptok::linear: x \[2, 5\] does not match weight \[3, 4\] \(out, in\)/,
  );
  assert.throws(
    () => aten('reptok::linear', r([2, 4], 'float64'), r([3, 4], 'float64'), null),
    /inputs must be float32 or bfloat16 CPU tensors/,
  );
});

test('fused kernels: float64 finite-difference gradients', () => {
  gradcheck(
    (q, k, v) => F.scaledDotProductAttention(q, k, v, { scale: 0.7 }),
    [r([1, 2, 3, 4], 'float64'), r([1, 2, 5, 4], 'float64'), r([1, 2, 5, 4], 'float64')],
    { what: 'attention' },
  );
  gradcheck((x, s) => F.rmsNorm(x, s), [r([2, 3, 6], 'float64'), r([2, 1, 6], 'float64')], { what: 'rmsNorm' });
  gradcheck((h) => F.swiglu(h), [r([2, 3, 10], 'float64')], { what: 'swiglu' });
  const [c, s] = theta(1, 2, 3, 2, 'float64');
  gradcheck(
    (qkv, sc) => qk(qkv, sc, c!, s!),
    [r([1, 3, 3, 2, 8], 'float64'), rand([2], { dtype: 'float64', generator: g }).add(1)],
    { what: 'cosineRopeQK' },
  );
});

test('fused kernels run as reptok:: operators (visible to the profiler)', () => {
  const x = r([2, 4, 8]);
  const q = r([1, 2, 3, 4]);
  const { ops } = profile(() => tidy(() => void [F.rmsNorm(x, r([8])), F.scaledDotProductAttention(q, q, q)]));
  for (const op of ['reptok::rms_norm', 'reptok::attention'])
    assert.ok(
      ops.some((o) => o.name.startsWith(op)),
      `profile lists ${ops.map((o) => o.name).join(', ')}`,
    );
});

test('fused kernels: bad shapes are clear errors; double backward is refused', () => {
  assert.throws(
    () => aten('reptok::rms_norm', r([2, 8]), r([4]), 1e-6),
    /reptok::rms_norm: scale \[4\] does not match the last dim of x \[2, 8\]/,
  );
  assert.throws(
    () => aten('reptok::rms_norm', r([2, 3, 8]), r([2, 3, 8]), 1e-6),
    /scale \[2, 3, 8\] must be \(W\) or \(B, 1, \.\.\., W\)/,
  );
  assert.throws(() => F.swiglu(r([2, 7])), /reptok::swiglu: the last dim of h must be even/);
  assert.throws(
    () => aten('reptok::cosine_rope_qk', r([2, 5, 16]), r([3]), r([2, 3, 5, 4]), r([2, 3, 5, 4])),
    /qkv must be \(B, L, 3, H, e\)/,
  );
  assert.throws(
    () => aten('reptok::attention', r([2, 3, 4]), r([2, 3, 4]), r([2, 3, 4]), 1),
    /reptok::attention: q, k, v must be \(B, H, L, e\)/,
  );
  assert.throws(
    () => aten('reptok::attention', r([1, 2, 3, 4]), r([1, 2, 5, 4]), r([1, 2, 6, 4]), 1),
    /k and v must be \(B, H, Lk, e\)/,
  );
  tidy(() => {
    const x = r([2, 8]).requiresGrad_(true);
    assert.throws(
      () =>
        grad(
          [
            F.rmsNorm(x, r([8]))
              .square()
              .sum(),
          ],
          [x],
          { createGraph: true },
        ),
      /no double backward/,
    );
    const q = r([1, 1, 3, 4]).requiresGrad_(true);
    assert.throws(
      () => grad([F.scaledDotProductAttention(q, q, q).square().sum()], [q], { createGraph: true }),
      /reptok::attention: the fused kernel has no double backward/,
    );
  });
});
