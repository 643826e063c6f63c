// The two DINOv2 refinements of self-distillation, checked against their definitions: Sinkhorn-Knopp targets are
// distributions per sample that share the prototypes evenly across the batch (where a softmax would not); KoLeo
// falls as features spread out.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Generator, randn, tensor, tidy } from '../../src/index.ts';
import { koleoLoss, sinkhornKnopp } from '../../src/models/self-distillation.ts';

test('sinkhornKnopp: rows are distributions, prototypes share the batch evenly', () =>
  tidy(() => {
    const g = new Generator({ seed: 1 });
    const [N, K] = [64, 16];
    const logits = randn([N, K], { generator: g })
      .mul(0.5)
      .add(randn([1, K], { generator: g }).mul(3)); // prototype-biased
    const q = sinkhornKnopp(logits, 0.1, 10);
    assert.deepEqual(q.shape, [N, K]);
    for (const s of q.sum(1).toArray() as number[]) assert.ok(Math.abs(s - 1) < 1e-4, `row sum ${s}`);
    // Each prototype gets about N/K samples' worth of mass (the last normalisation is per row, so not exactly);
    // a softmax of the same logits piles onto the biased prototypes.
    const imbalance = (cols: number[]) => Math.max(...cols.map((s) => Math.abs(s - N / K) / (N / K)));
    const sinkhorn = imbalance(q.sum(0).toArray());
    const softmax = imbalance(logits.div(0.1).softmax(-1).sum(0).toArray());
    assert.ok(sinkhorn < 0.1, `Sinkhorn column imbalance ${sinkhorn}`);
    assert.ok(softmax > 2, `softmax column imbalance ${softmax} (the test logits should be biased)`);
    assert.ok((q.toArray() as number[][]).flat().every((v) => v >= 0 && Number.isFinite(v)));
  }));

test('koleoLoss: lower for spread features than for clustered ones, finite with duplicates, has gradients', () =>
  tidy(() => {
    const g = new Generator({ seed: 2 });
    const spread = randn([32, 8], { generator: g });
    const clustered = randn([1, 8], { generator: g }).add(randn([32, 8], { generator: g }).mul(0.01));
    const a = koleoLoss(spread).item();
    const b = koleoLoss(clustered).item();
    assert.ok(a < b, `spread ${a} should be below clustered ${b}`);
    // Exact duplicates give distance 0: eps keeps the loss finite.
    const dup = tensor([
      [1, 0],
      [1, 0],
      [0, 1],
    ]);
    assert.ok(Number.isFinite(koleoLoss(dup).item()));
    const x = randn([16, 4], { generator: g }).requiresGrad_();
    koleoLoss(x).backward();
    assert.ok(x.grad && Number.isFinite(x.grad.abs().sum().item()) && x.grad.abs().sum().item() > 0);
  }));
