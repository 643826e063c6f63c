// c10d through the addon, with 2 processes on this machine: gloo collectives over a FileStore and a TCPStore on
// 127.0.0.1 return the right values; a peer that exits or goes silent ends a collective with an error (never a hang);
// the gradient reducer averages bucketed gradients, handles unused parameters and accumulation without sync.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { freePort } from '../../src/train/launch.ts';
import { ROOT } from '../helpers.ts';

const WORKER = join(ROOT, 'test', 'distributed', 'c10d-worker.ts');

interface RankResult {
  code: number | null;
  out: any;
  stderr: string;
}

/** Runs the worker as ranks 0 and 1 of one group; resolves with each rank's exit code and JSON output. */
async function twoRanks(scenario: string, store: 'file' | 'tcp', timeoutMs = 3000): Promise<RankResult[]> {
  const env: Record<string, string> = { SCENARIO: scenario, WORLD_SIZE: '2', TIMEOUT_MS: String(timeoutMs) };
  if (store === 'file') env.STORE_FILE = join(mkdtempSync(join(tmpdir(), 'reptok-store-')), 'store');
  else env.MASTER_PORT = String(await freePort());
  return Promise.all(
    [0, 1].map(
      (rank) =>
        new Promise<RankResult>((resolve) => {
          const child = spawn(process.execPath, ['--import', 'tsx', WORKER], {
            cwd: ROOT,
            env: { ...process.env, ...env, RANK: String(rank), OMP_NUM_THREADS: '1' },
          });
          let stdout = '';
          let stderr = '';
          child.stdout.on('data', (d) => (stdout += d));
          child.stderr.on('data', (d) => (stderr += d));
          child.on('exit', (code) => {
            const line = stdout.trim().split('\n').at(-1);
            resolve({ code, out: line ? JSON.parse(line) : null, stderr });
          });
        }),
    ),
  );
}

for (const store of ['file', 'tcp'] as const) {
  test(`allReduce, broadcast, allGather and barrier across 2 processes (gloo, ${store} store)`, async () => {
    const ranks = await twoRanks('collectives', store);
    for (const [rank, r] of ranks.entries()) {
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.out, {
        rank,
        worldSize: 2,
        backend: 'gloo',
        sum: [3, 30],
        max: [1, 0],
        broadcast: [1, 1, 1],
        gathered: [
          [0, 1],
          [2, 3],
        ],
      });
    }
  });
}

test('a peer that exits makes the collective fail with an error instead of hanging', async () => {
  const [r0, r1] = await twoRanks('peer-exits', 'tcp');
  assert.equal(r1!.code, 0);
  assert.equal(r0!.code, 0, r0!.stderr);
  assert.match(r0!.out.error, /^allReduce \(rank 0 of 2, gloo\): /);
});

test('a peer that never joins makes the collective fail after the timeout', async () => {
  const [r0] = await twoRanks('peer-silent', 'file', 1500);
  assert.equal(r0!.code, 0, r0!.stderr);
  assert.match(r0!.out.error, /^barrier \(rank 0 of 2, gloo\): .*(timed out|Timed out|timeout)/i);
});

test('the reducer averages bucketed gradients, with unused parameters and accumulation without sync', async () => {
  const ranks = await twoRanks('reducer', 'file');
  for (const r of ranks) {
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.out.buckets, 2);
    // w: rank 0 accumulates [1,1,-1] + [2,1,-1], rank 1 2·([2,1,-1] + [3,1,-1]); the mean of both
    assert.deepEqual(r.out.w, [6.5, 3, -3]);
    // u: 1 + 2 on rank 0, nothing (zeros) on rank 1
    assert.deepEqual(r.out.u, [1.5]);
    assert.equal(r.out.never, true, 'a parameter unused on every rank keeps no gradient');
    assert.equal(r.out.finalize.unused, 1);
  }
});
