// The fused kernels (native/fused.cc: rmsNorm, swiglu, cosineRopeQK) against the composite ATen formulas they replace: forward and every
// gradient in float32, finite differences in float64, bad inputs, and the double-backward refusal.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { F, Generator, Tensor, aten, grad, profile, rand, randn, setFusedKernels, tidy } from '../../src/index.ts';
import { assertClose, gradcheck } from '../helpers.ts';

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
  fused.forEach((t, i) => assertClose(t, composite[i]!, { atol: 2e-5, rtol: 1e-4 }, `${name}: ${i ? `gradient ${i}` : 'output'}`));
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
  compare('rmsNorm, elementwise scale (composite on both sides)', (x, s) => F.rmsNorm(x, s), [r([2, 3, 8]), r([2, 3, 8])], [2, 3, 8]);
});

test('swiglu: fused = composite, including large gates (the fast exp saturates cleanly)', () => {
  compare('swiglu', (h) => F.swiglu(h), [r([3, 5, 2 * 37])], [3, 5, 37]);
  compare('swiglu, large values', (h) => F.swiglu(h), [r([4, 2 * 64]).mul(40)], [4, 64]);
});

test('cosineRopeQK: fused = composite (q, k, d·2 < e and d·2 = e)', () => {
  const [c, s] = theta(2, 3, 5, 4);
  compare('cosineRopeQK', (qkv, sc) => qk(qkv, sc, c!, s!), [r([2, 5, 3, 3, 16]), rand([3], { generator: g }).mul(10).add(0.5)], [2, 3, 5, 16]);
  const [c2, s2] = theta(1, 2, 4, 8);
  compare('cosineRopeQK full rotation', (qkv, sc) => qk(qkv, sc, c2!, s2!), [r([1, 4, 3, 2, 16]), rand([2], { generator: g }).add(1)], [1, 2, 4, 16]);
});

test('fused kernels: float64 finite-difference gradients', () => {
  gradcheck((x, s) => F.rmsNorm(x, s), [r([2, 3, 6], 'float64'), r([2, 1, 6], 'float64')], { what: 'rmsNorm' });
  gradcheck((h) => F.swiglu(h), [r([2, 3, 10], 'float64')], { what: 'swiglu' });
  const [c, s] = theta(1, 2, 3, 2, 'float64');
  gradcheck((qkv, sc) => qk(qkv, sc, c!, s!), [r([1, 3, 3, 2, 8], 'float64'), rand([2], { dtype: 'float64', generator: g }).add(1)], { what: 'cosineRopeQK' });
});

test('fused kernels run as reptok:: operators (visible to the profiler)', () => {
  const x = r([2, 4, 8]);
  const { ops } = profile(() => tidy(() => void F.rmsNorm(x, r([8]))));
  assert.ok(ops.some((o) => o.name.startsWith('reptok::rms_norm')), `profile lists ${ops.map((o) => o.name).join(', ')}`);
});

test('fused kernels: bad shapes are clear errors; double backward is refused', () => {
  assert.throws(() => aten('reptok::rms_norm', r([2, 8]), r([4]), 1e-6), /reptok::rms_norm: scale \[4\] does not match the last dim of x \[2, 8\]/);
  assert.throws(() => aten('reptok::rms_norm', r([2, 3, 8]), r([2, 3, 8]), 1e-6), /scale \[2, 3, 8\] must be \(W\) or \(B, 1, \.\.\., W\)/);
  assert.throws(() => F.swiglu(r([2, 7])), /reptok::swiglu: the last dim of h must be even/);
  assert.throws(() => aten('reptok::cosine_rope_qk', r([2, 5, 16]), r([3]), r([2, 3, 5, 4]), r([2, 3, 5, 4])), /qkv must be \(B, L, 3, H, e\)/);
  tidy(() => {
    const x = r([2, 8]).requiresGrad_(true);
    assert.throws(() => grad([F.rmsNorm(x, r([8])).square().sum()], [x], { createGraph: true }), /no double backward/);
  });
});
