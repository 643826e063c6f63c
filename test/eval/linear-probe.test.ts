// The linear probe trains its classifier also when called under noGrad (as the stages' evaluate() does).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Generator, noGrad, randn, tensor } from '../../src/index.ts';
import { linearProbeAccuracy } from '../../src/eval/linear-probe.ts';

test('linearProbeAccuracy learns separable classes, also inside noGrad', () => {
  const g = new Generator({ seed: 0 });
  const labels = tensor(
    Int32Array.from({ length: 512 }, (_, i) => i % 2),
    { dtype: 'int64' },
  );
  // class 1 is shifted by 3 along every feature
  const x = randn([512, 8], { generator: g }).add(labels.to('float32').unsqueeze(1).mul(3));
  const acc = noGrad(() => linearProbeAccuracy(x, labels, x, labels, { classes: 2, epochs: 5, batchSize: 64 }));
  assert.ok(acc > 0.95, `accuracy ${acc}`);
});
