// The engine under hostile use: every fused kernel with zero-size dimensions (forward and backward), and worker
// threads terminated while busy with tensor ops. Each case runs in a supervised child (tools/fuzz/supervise.ts), so
// a SIGFPE or an abort fails the test instead of killing the runner.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';

import { CaseRunner } from '../../tools/fuzz/supervise.ts';

const runner = new CaseRunner({ heapMb: 384, rssMb: 1024, timeoutMs: 60_000 });
after(() => runner.close());

/** Zero-size shapes for every fused kernel (inputs as the kernel's fused path takes them). */
const ZERO_SIZE_CASES: { op: string; shapes: number[][] }[] = [
  { op: 'rmsNorm', shapes: [[2, 0], [0]] },
  { op: 'rmsNorm', shapes: [[0, 5, 16], [16]] },
  {
    op: 'rmsNorm',
    shapes: [
      [0, 5, 16],
      [0, 1, 16],
    ],
  },
  {
    op: 'rmsNorm',
    shapes: [
      [3, 0, 16],
      [3, 1, 16],
    ],
  },
  {
    op: 'rmsNorm',
    shapes: [
      [2, 3, 0],
      [2, 1, 0],
    ],
  },
  { op: 'swiglu', shapes: [[0, 8]] },
  { op: 'swiglu', shapes: [[3, 0]] },
  { op: 'swiglu', shapes: [[2, 0, 4]] },
  { op: 'cosineRopeQK', shapes: [[0, 4, 3, 2, 8], [2], [0, 2, 4, 4], [0, 2, 4, 4]] },
  { op: 'cosineRopeQK', shapes: [[2, 0, 3, 2, 8], [2], [2, 2, 0, 4], [2, 2, 0, 4]] },
  { op: 'cosineRopeQK', shapes: [[2, 4, 3, 0, 8], [0], [2, 0, 4, 4], [2, 0, 4, 4]] },
  { op: 'cosineRopeQK', shapes: [[2, 4, 3, 2, 0], [2], [2, 2, 4, 0], [2, 2, 4, 0]] },
  {
    op: 'attention',
    shapes: [
      [0, 2, 4, 8],
      [0, 2, 4, 8],
      [0, 2, 4, 8],
    ],
  },
  {
    op: 'attention',
    shapes: [
      [2, 2, 0, 8],
      [2, 2, 4, 8],
      [2, 2, 4, 8],
    ],
  },
  {
    op: 'attention',
    shapes: [
      [2, 2, 4, 8],
      [2, 2, 0, 8],
      [2, 2, 0, 8],
    ],
  },
  {
    op: 'attention',
    shapes: [
      [2, 2, 4, 0],
      [2, 2, 4, 0],
      [2, 2, 4, 0],
    ],
  },
  { op: 'linear', shapes: [[0, 32], [32, 32], [32]] },
  { op: 'linear', shapes: [[4, 0, 32], [32, 32], [32]] },
  { op: 'linear', shapes: [[4, 32], [0, 32], [0]] },
];

test('every fused kernel survives zero-size dimensions, forward and backward, float32 and bf16 (no SIGFPE)', async () => {
  const bf16 = (c: (typeof ZERO_SIZE_CASES)[number]) => (c.op === 'linear' ? [] : [{ ...c, native: true, bf16: true }]);
  for (const c of ZERO_SIZE_CASES.flatMap((c) => [c, { ...c, native: true }, ...bf16(c)])) {
    const o = await runner.run('kernel', JSON.stringify(c));
    assert.equal(
      o.kind,
      'ok',
      `${JSON.stringify(c)}: the child ended by ${o.kind} (${o.signal ?? o.code})\n${o.stderr}`,
    );
    const r = o.report as { ok: boolean; error?: string; internal?: boolean };
    assert.ok(r.ok || r.internal === false, `${JSON.stringify(c)}: ${r.error}`);
  }
});

test('terminating worker threads busy with tensor ops leaves the main thread alive', async () => {
  const o = await runner.run('worker', '');
  assert.equal(o.kind, 'ok', `the process ended by ${o.kind} (${o.signal ?? o.code})\n${o.stderr.slice(-500)}`);
  assert.deepEqual((o.report as { detail: unknown }).detail, { mainAlive: [8, 8] });
});
