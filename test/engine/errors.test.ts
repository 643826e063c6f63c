// Bad calls raise JavaScript errors that name the operation and the shapes/dtypes involved; none crashes the process.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { F, aten, fromBytes, full, randn, tensor, zeros, Generator, Tensor } from '../../src/index.ts';

const expectError = (fn: () => unknown, pattern: RegExp): void =>
  assert.throws(fn, (e: Error) => {
    assert.match(e.message, pattern);
    return true;
  });

test('shape mismatches name the op and both shapes', () => {
  expectError(
    () => randn([2, 3]).add(randn([4])),
    /aten::add\.Tensor\(self=float32\[2, 3\], other=float32\[4\].*must match/,
  );
  expectError(() => randn([2, 3]).matmul(randn([4, 5])), /aten::matmul.*float32\[2, 3\].*float32\[4, 5\]/);
  expectError(() => randn([6]).view(4), /aten::view.*invalid/i);
  expectError(() => F.conv2d(randn([1, 3, 8, 8]), randn([4, 2, 3, 3])), /aten::conv2d.*expected input.*channels/i);
  expectError(() => F.layerNorm(randn([2, 5]), [4]), /aten::layer_norm/);
});

test('wrong dtypes are reported with dtype names', () => {
  expectError(
    () =>
      randn([2, 2]).mm(
        tensor(
          [
            [1, 2],
            [3, 4],
          ],
          { dtype: 'int64' },
        ),
      ),
    /aten::mm.*float32\[2, 2\].*int64\[2, 2\]/,
  );
  expectError(() => F.embedding(randn([3]), randn([5, 2])), /aten::embedding.*(Long|Int)/);
  expectError(() => tensor([1], { dtype: 'complex64' as never }), /unknown dtype 'complex64'/);
});

test('out-of-range indices raise RangeError instead of reading out of bounds', () => {
  const x = randn([3, 4]);
  assert.throws(() => x.indexSelect(0, tensor([3], { dtype: 'int64' })), RangeError);
  assert.throws(() => x.select(1, 9), RangeError);
  assert.throws(() => x.gather(1, tensor([[0], [7], [1]], { dtype: 'int64' })), /index 7 is out of bounds/);
  assert.throws(() => F.embedding(tensor([10], { dtype: 'int64' }), randn([5, 2])), RangeError);
  assert.throws(() => x.size(5), RangeError);
  assert.throws(() => x.index([tensor([5], { dtype: 'int64' })]), /out of bounds/);
});

test('use after dispose is an error, and dispose is idempotent', () => {
  const x = randn([2]);
  x.dispose();
  x.dispose();
  assert.equal(x.isDisposed, true);
  expectError(() => x.add(1), /aten::add\.Tensor: argument 'self': tensor was used after dispose\(\)/);
  expectError(() => x.shape, /used after dispose/);
  expectError(() => randn([2]).add(x), /argument 'other': tensor was used after dispose/);
  expectError(() => x.data(), /used after dispose/);
});

test('JavaScript type errors name the argument', () => {
  expectError(() => aten('aten::add.Tensor', randn([2]), 'x'), /argument 'other' expects a Tensor, got 'x'/);
  expectError(() => aten('aten::reshape', randn([2]), [1.5]), /argument 'shape' expects an array of integers/);
  expectError(() => aten('aten::select.int', randn([2])), /missing argument 'dim'/);
  expectError(() => aten('aten::neg', randn([2]), 1, 2, 3), /takes 1 arguments, got 4/);
  expectError(() => aten('aten::no_such_op'), /does not exist/);
  expectError(() => randn([2]).to({ device: 'tpu' }), /aten::to\.device|device/i);
});

test('bad sizes and allocations fail cleanly', () => {
  expectError(() => zeros([-1]), /negative/i);
  expectError(() => zeros([1e7, 1e7]), /alloc|memory|overflow|size/i);
  expectError(() => fromBytes(new Uint8Array(5), 'float32', [2]), /8 bytes.*5 bytes/);
  expectError(() => randn([3]).item(), /one element|1 element|a Tensor with 3 elements/i);
});

test('autograd misuse is an error', () => {
  const w = randn([3]).requiresGrad_();
  expectError(() => w.mul(2).backward(), /grad can be implicitly created only for scalar outputs/);
  const loss = w.mul(w).sum();
  loss.backward();
  expectError(() => loss.backward(), /backward through the graph a second time/);
  expectError(() => randn([2]).sum().backward(), /does not require grad/);
  expectError(() => {
    w.grad = randn([4]);
  }, /gradient shape/);
  expectError(() => w.mul(2).requiresGrad_(false), /only change requires_grad flags of leaf variables/);
});

test('CUDA requests on a CPU-only libtorch explain themselves', () => {
  expectError(() => full([2], 1, { device: 'cuda' }), /CUDA|cuda/);
  expectError(() => new Generator({ device: 'cuda' }), /CUDA|cuda/);
  assert.ok(randn([2]) instanceof Tensor);
});

test('a storm of random bad calls on every Tensor method never crashes the process', () => {
  // Each method is called with combinations of awkward arguments; it must either work or throw an Error.
  const pool = (): unknown[] => [
    randn([2, 3]),
    randn([4]),
    tensor([1, 0], { dtype: 'int64' }),
    tensor([true]),
    randn([]),
    0,
    -3,
    2,
    0.5,
    'x',
    null,
    undefined,
    [1, -1],
    [[2]],
    {},
  ];
  const skip = new Set(['constructor', 'dispose', '_replace', 'toString']);
  const methods = Object.getOwnPropertyNames(Tensor.prototype).filter(
    (m) => !skip.has(m) && typeof Object.getOwnPropertyDescriptor(Tensor.prototype, m)!.value === 'function',
  );
  let calls = 0;
  let errors = 0;
  let seed = 1;
  const pick = <T>(a: T[]): T => a[(seed = (seed * 1103515245 + 12345) % 2147483648) % a.length]!;
  for (const m of methods) {
    for (let k = 0; k < 12; k++) {
      const self = pick([randn([2, 3]), tensor([3, 1], { dtype: 'int64' }), randn([]), tensor([[true, false]])]);
      const args = [pick(pool()), pick(pool()), pick(pool())].slice(0, k % 4);
      calls++;
      try {
        (self as any)[m](...args);
      } catch (e) {
        assert.ok(e instanceof Error, `${m} threw a non-Error`);
        errors++;
      }
    }
  }
  assert.ok(calls > 1000 && errors > 100, `${calls} calls, ${errors} errors`);
});
