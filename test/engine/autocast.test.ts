// CPU autocast: matmuls run in bfloat16, the normalisations that follow them take the bfloat16 activations with their
// float32 parameters (libtorch 1.13's kernels alone reject the mix), and gradients reach the float32 parameters.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Generator, autocast, randn, tidy } from '../../src/index.ts';
import { F } from '../../src/engine/index.ts';
import { GroupNorm, LayerNorm, Linear } from '../../src/nn/index.ts';

test('autocast: Linear runs in bfloat16, LayerNorm/GroupNorm after it in float32, gradients in float32', () =>
  tidy(() => {
    const g = new Generator({ seed: 0 });
    const lin = new Linear(8, 16, { generator: g });
    const ln = new LayerNorm(16);
    const gn = new GroupNorm(4, 16);
    const x = randn([4, 8], { generator: g });
    const { h, a, b } = autocast(() => {
      const h = lin.forward(x); // (4, 16)
      return { h, a: ln.forward(h), b: gn.forward(h) };
    });
    assert.equal(h.dtype, 'bfloat16');
    assert.equal(a.dtype, 'float32');
    assert.equal(b.dtype, 'float32');
    // Same numbers as normalising the bfloat16 activations by hand in float32.
    const ref = F.layerNorm(h.float(), [16], ln.weight, ln.bias);
    assert.ok(a.sub(ref).abs().max().item() < 1e-6);
    a.add(b).square().sum().backward();
    for (const p of [lin.weight, ln.weight!, gn.weight!]) {
      assert.equal(p.grad?.dtype, 'float32');
      assert.ok(p.grad!.abs().sum().item() > 0);
    }
    for (const m of [lin, ln, gn]) m.dispose();
  }));

test('outside autocast, a dtype mismatch is still an error that names the operator', () =>
  tidy(() => {
    const x = randn([2, 4]).to('bfloat16');
    const w = randn([3, 4]);
    assert.throws(
      () => F.linear(x, w),
      /reptok::linear: x \(BFloat16\), weight \(Float\) must have one dtype|aten::linear|aten::addmm|aten::mm/,
    );
  }));

test('autocast regions nest: the outer region stays on after an inner one ends', () =>
  tidy(() => {
    const [x, w] = [randn([2, 16]), randn([16, 16])];
    const dtypes = autocast(() => {
      const inner = autocast(() => F.linear(x, w).dtype);
      return [inner, F.linear(x, w).dtype];
    });
    assert.deepEqual(dtypes, ['bfloat16', 'bfloat16']);
    assert.equal(F.linear(x, w).dtype, 'float32', 'off after the outermost region');
    assert.throws(
      () =>
        autocast(() =>
          autocast(() => {
            throw new Error('inner failure');
          }),
        ),
      /inner failure/,
    );
    assert.equal(F.linear(x, w).dtype, 'float32', 'off after regions that threw');
  }));
