// ODE samplers: exactness on fields they integrate exactly, convergence order, adaptive step control, NFE counts.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { randn, tensor, tidy } from '../../src/index.ts';
import { solve } from '../../src/flow/ode.ts';
import { decoderPath, generatorPath, sampleTime } from '../../src/flow/paths.ts';

test('Euler follows the reference loop and counts one evaluation per step', () => {
  const seen: number[] = [];
  const z0 = tensor([1, 2]);
  const { z, nfe } = solve((zt, t) => (seen.push(t), zt.mul(0).add(1)), z0, 1, 0, { steps: 4 });
  assert.deepEqual(seen, [1, 0.75, 0.5, 0.25], 'times i/N for i = N..1, as CompVis/RepTok samples');
  assert.equal(nfe, 4);
  assert.deepEqual(z.toArray(), [0, 1]);
  assert.deepEqual(z0.toArray(), [1, 2], 'the start is not modified');
});

test('Heun is second order and dopri5 meets its tolerance with fewer evaluations on smooth fields', () => {
  // dz/dt = -z·t on t in [0, 1]: z(1) = z0·exp(-1/2)
  const v = (z: ReturnType<typeof tensor>, t: number) => z.mul(-t);
  const exact = Math.exp(-0.5);
  const err = (sampler: 'euler' | 'heun', steps: number) =>
    Math.abs(tidy(() => solve(v, tensor([1], { dtype: 'float64' }), 0, 1, { sampler, steps }).z.item()) - exact);
  const e1 = err('heun', 32);
  const e2 = err('heun', 64);
  assert.ok(e1 / e2 > 3.5 && e1 / e2 < 4.5, `Heun error ratio ${e1 / e2} (expected ~4: second order)`);
  assert.ok(err('euler', 64) > 10 * e2, 'Euler is first order');
  const d = solve(v, tensor([1], { dtype: 'float64' }), 0, 1, { sampler: 'dopri5', atol: 1e-9, rtol: 1e-9 });
  assert.ok(Math.abs(d.z.item() - exact) < 1e-8);
  assert.ok(d.nfe < 200, `dopri5 used ${d.nfe} evaluations`);
  const loose = solve(v, tensor([1], { dtype: 'float64' }), 0, 1, { sampler: 'dopri5', atol: 1e-3, rtol: 1e-3 });
  assert.ok(loose.nfe < d.nfe, 'looser tolerances take fewer evaluations');
  assert.throws(() => solve(v, tensor([1]), 0, 1, { steps: 0 }), /positive integer/);
});

test('paths: interpolation endpoints and targets in both time conventions', () => {
  tidy(() => {
    const x = randn([2, 3]);
    const e = randn([2, 3]);
    assert.ok(decoderPath.interpolate(x, e, tensor([0, 0])).allclose(x));
    assert.ok(decoderPath.interpolate(x, e, tensor([1, 1])).allclose(e));
    assert.ok(decoderPath.target(x, e).allclose(e.sub(x)));
    assert.ok(generatorPath.interpolate(x, e, tensor([1, 1])).allclose(x));
    assert.ok(generatorPath.interpolate(x, e, tensor([0, 0])).allclose(e));
    const t = sampleTime(10000, { kind: 'logit-normal' });
    assert.ok(t.min().item() > 0 && t.max().item() < 1 && Math.abs(t.mean().item() - 0.5) < 0.02);
  });
});
