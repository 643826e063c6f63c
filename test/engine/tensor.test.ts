// The Tensor API: creation, dtypes, conversions, views, in-place semantics, promotion, generators, grad modes.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  Generator,
  arange,
  enableGrad,
  randint,
  randperm,
  eye,
  full,
  getNumThreads,
  grad,
  isGradEnabled,
  linspace,
  noGrad,
  ones,
  randn,
  setNumThreads,
  tensor,
  zeros,
} from '../../src/index.ts';

test('tensors from nested arrays, booleans and TypedArrays', () => {
  const a = tensor([
    [1, 2],
    [3, 4],
  ]);
  assert.equal(a.dtype, 'float32');
  assert.deepEqual(a.shape, [2, 2]);
  assert.deepEqual(a.toArray(), [
    [1, 2],
    [3, 4],
  ]);
  assert.equal(tensor([true, false]).dtype, 'bool');
  assert.deepEqual(tensor([true, false]).toArray(), [true, false]);
  assert.equal(tensor(new Int32Array([1, 2, 3])).dtype, 'int32');
  assert.deepEqual(tensor(new Float64Array([1, 2, 3, 4, 5, 6]), { shape: [2, 3] }).shape, [2, 3]);
  assert.equal(tensor(new BigInt64Array([5n])).item(), 5);
  assert.equal(tensor(3.5).item(), 3.5);
  assert.deepEqual(tensor(3.5).shape, []);
  assert.throws(() => tensor([[1, 2], [3]]), /ragged/);
});

test('every dtype converts and copies out', () => {
  const x = tensor([1.5, -2, 3]);
  for (const d of ['float64', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool'] as const) {
    const y = x.to(d);
    assert.equal(y.dtype, d);
    assert.equal(y.data().length, 3);
  }
  assert.deepEqual([...x.to('float16').data()], [1.5, -2, 3], 'half values come out as float32');
  assert.deepEqual([...x.to('int64').data<'int64'>()], [1n, -2n, 3n]);
  assert.deepEqual(x.to('uint8').toArray(), [1, 254, 3]);
});

test('factories follow PyTorch dtypes and values', () => {
  assert.equal(arange(5).dtype, 'int64');
  assert.equal(arange(0, 1, 0.25).dtype, 'float32');
  assert.deepEqual(arange(0, 1, 0.25).toArray(), [0, 0.25, 0.5, 0.75]);
  assert.deepEqual(linspace(0, 1, 3).toArray(), [0, 0.5, 1]);
  assert.deepEqual(eye(2).toArray(), [
    [1, 0],
    [0, 1],
  ]);
  assert.equal(full([2], true).dtype, 'bool');
  assert.equal(randint(0, 5, [3]).dtype, 'int64');
  assert.equal(randperm(4).dtype, 'int64');
  assert.equal(zeros([2], { dtype: 'int32' }).dtype, 'int32');
  assert.equal(ones([1], { requiresGrad: true }).requiresGrad, true);
});

test('type promotion matches PyTorch (wrapped numbers do not widen)', () => {
  const f = tensor([1, 2]);
  const i = tensor([1, 2], { dtype: 'int64' });
  assert.equal(f.add(0.5).dtype, 'float32');
  assert.equal(i.mul(2).dtype, 'int64');
  assert.equal(i.add(0.5).dtype, 'float32');
  assert.equal(i.div(2).dtype, 'float32');
  assert.equal(f.to('float16').add(f.to('float64')).dtype, 'float64');
  assert.equal(f.gt(1).dtype, 'bool');
});

test('views share memory; in-place ops return the same Tensor', () => {
  const x = zeros([2, 3]);
  const row = x.select(0, 1);
  assert.ok(row.sameStorage(x));
  const r = row.add_(5);
  assert.equal(r, row);
  assert.deepEqual(x.toArray(), [
    [0, 0, 0],
    [5, 5, 5],
  ]);
  assert.ok(!x.clone().sameStorage(x));
  assert.ok(x.transpose(0, 1).contiguous().isContiguous());
});

test('generators are independent, seedable and restorable', () => {
  const g = new Generator({ seed: 3 });
  const state = g.getState();
  const a = randn([4], { generator: g });
  const b = randn([4], { generator: g });
  assert.ok(!a.equal(b));
  g.setState(state);
  assert.ok(randn([4], { generator: g }).equal(a));
  g.manualSeed(3);
  assert.ok(randn([4], { generator: g }).equal(a));
  const d = Generator.default();
  const s = d.getState();
  const u = randn([3]);
  d.setState(s);
  assert.ok(randn([3]).equal(u), 'the default generator state can be saved and restored');
});

test('grad modes and functional gradients', () => {
  const w = randn([3]).requiresGrad_();
  assert.equal(isGradEnabled(), true);
  const y = noGrad(() => {
    assert.equal(isGradEnabled(), false);
    assert.equal(enableGrad(() => w.mul(2)).requiresGrad, true);
    return w.mul(2);
  });
  assert.equal(y.requiresGrad, false);
  assert.equal(isGradEnabled(), true);
  const [dw] = grad(w.mul(w).sum(), w);
  assert.ok(dw!.allclose(w.mul(2)));
  const h = w.mul(3).retainGrad();
  h.sum().backward();
  assert.deepEqual(h.grad!.toArray(), [1, 1, 1]);
  assert.equal(h.gradFn, 'MulBackward0');
  assert.equal(w.isLeaf, true);
});

test('printing shows values for small tensors and the header always', () => {
  assert.equal(
    String(
      tensor([
        [1, 2],
        [3, 4],
      ]),
    ),
    'Tensor([[1., 2.],\n        [3., 4.]], float32[2, 2])',
  );
  assert.match(String(zeros([100, 100])), /^Tensor\(float32\[100, 100\]\)$/);
  assert.match(String(randn([2]).requiresGrad_()), /requiresGrad/);
});

test('thread count is configurable', () => {
  const n = getNumThreads();
  setNumThreads(1);
  assert.equal(getNumThreads(), 1);
  setNumThreads(n);
  assert.throws(() => setNumThreads(0), /an integer from 1 to/);
  assert.throws(() => setNumThreads(1e6), /an integer from 1 to/);
});

test('aminmax: minimum and maximum in one pass, overall and along a dim', () => {
  const t = tensor([
    [3, -1, 2],
    [0, 5, -4],
  ]);
  const all = t.aminmax();
  assert.deepEqual([all.min.item(), all.max.item()], [-4, 5]);
  const rows = t.aminmax(1, true);
  assert.deepEqual(rows.min.shape, [2, 1]);
  assert.deepEqual(
    [rows.min.toArray(), rows.max.toArray()],
    [
      [[-1], [-4]],
      [[3], [5]],
    ],
  );
});
