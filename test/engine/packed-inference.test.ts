// Float32 linear layers on packed weights (packForInference, native/kernels/linear.cc and onednn.cc): a marked
// weight's forward-only calls run oneDNN's float32 matmul primitive over a copy packed once per parameter version;
// calls with a backward pass to come, and unmarked weights, run sgemm. Both compute float32 products; only the order
// of the float32 sums differs (relative ~K·2⁻²⁴ with K = 64: 1e-5 covers it).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  F,
  Generator,
  Tensor,
  noGrad,
  packForInference,
  randn,
  runtimeInfo,
  tidy,
  weightCopies,
} from '../../src/index.ts';
import { Linear, Sequential } from '../../src/nn/index.ts';
import { PACKED_LINEAR_CASES, assertClose, onednnAbsent } from '../helpers.ts';

const g = new Generator({ seed: 5 });
const r = (s: number[]): Tensor => randn(s, { generator: g });
const tol = { atol: 1e-5, rtol: 1e-5 };

/** Whether float32 matmul primitives run here; otherwise checks that marking marks nothing, and says so. */
function primitivesHere(t: { diagnostic(m: string): void; skip(m: string): void }): boolean {
  if (!runtimeInfo().onednnGemm) {
    t.skip(onednnAbsent());
    return false;
  }
  if (runtimeInfo().float32Matmul !== null) return true;
  // a build without oneDNN's headers (or another oneDNN version): nothing is marked, every call runs sgemm
  tidy(() => assert.equal(packForInference([r([32, 64])]), 0, 'no weight is marked without matmul primitives'));
  t.diagnostic('no float32 matmul primitives in this build: checked that packForInference marks nothing');
  return false;
}

test('packed float32 linear: forward-only calls of marked weights = sgemm; graph calls and others unpacked', (t) => {
  if (!primitivesHere(t)) return;
  assert.match(runtimeInfo().float32Matmul!, /^brg|^gemm|jit/, 'oneDNN names the float32 matmul implementation');
  tidy(() => {
    for (const { M, bias, what } of PACKED_LINEAR_CASES) {
      const [x, w, b] = [r([M, 64]), r([48, 64]).requiresGrad_(true), r([48])];
      const layer = (): Tensor => F.linear(x, w, bias ? b : undefined);
      const plain = noGrad(layer); // unmarked: sgemm
      const before = weightCopies().packed;
      assert.equal(packForInference([w]), 1, what);
      assert.deepEqual(weightCopies().packed, before, `${what}: a mark packs nothing before the first call`);
      const y = noGrad(layer);
      assertClose(y, plain, tol, `${what}: packed vs sgemm`);
      const after = weightCopies().packed;
      assert.equal(after.count, before.count + 1, `${what}: one packed copy`);
      assert.ok(after.bytes - before.bytes >= 48 * 64 * 4, `${what}: the copy holds the float32 weight`);
      noGrad(layer);
      assert.deepEqual(weightCopies().packed, after, `${what}: the second call reuses the copy`);
      // a backward pass to come: sgemm, and gradients as ever
      const yt = layer();
      assert.ok(yt.requiresGrad, what);
      assertClose(yt.detach(), plain, tol, `${what}: graph call`);
      assert.equal(packForInference([w], false), 0, what);
      assert.equal(weightCopies().packed.count, before.count, `${what}: unmarking frees the copy`);
      assertClose(noGrad(layer), plain, tol, `${what}: unmarked again`);
    }
  });
});

test('packed float32 linear: copies follow in-place updates; views, float64, 1-D tensors are not marked', (t) => {
  if (!primitivesHere(t)) return;
  tidy(() => {
    const [x, w] = [r([8, 32]), r([16, 32])];
    packForInference([w]);
    const check = (what: string): void =>
      assertClose(
        noGrad(() => F.linear(x, w)),
        x.matmul(w.transpose(0, 1)),
        { atol: 1e-4, rtol: 1e-5 },
        what,
      );
    check('first call');
    noGrad(() => w.copy_(r([16, 32])));
    check('after copy_ (repacked in place)');
    const count = weightCopies().packed.count;
    noGrad(() => w.mul_(2));
    check('after mul_');
    assert.equal(weightCopies().packed.count, count, 'a new version rewrites the copy it has');
    packForInference([w], false);
    assert.equal(
      packForInference([w.narrow(0, 0, 8), w.double(), r([16])]),
      0,
      'only 2-D float32 tensors that own their storage',
    );
  });
});

test('Module.packForInference marks every 2-D weight of the sub-tree; to() drops the marks with the storage', (t) => {
  if (!primitivesHere(t)) return;
  const m = noGrad(() => new Sequential(new Linear(32, 64), new Linear(64, 16)));
  try {
    assert.equal(m.packForInference(), 2);
    const x = r([4, 32]);
    const before = weightCopies().packed.count;
    const y = noGrad(() => m.forward(x));
    assert.equal(weightCopies().packed.count, before + 2, 'both layers ran on packed copies');
    m.packForInference(false);
    assertClose(
      noGrad(() => m.forward(x)),
      y,
      tol,
      'unpacked',
    );
    assert.equal(weightCopies().packed.count, before, 'unmarking frees both copies');
    m.packForInference();
    m.to({ dtype: 'float64' }).to({ dtype: 'float32' });
    noGrad(() => m.forward(x)).dispose();
    assert.equal(weightCopies().packed.count, before, 'new storage carries no mark');
    x.dispose();
    y.dispose();
  } finally {
    m.dispose();
  }
});
