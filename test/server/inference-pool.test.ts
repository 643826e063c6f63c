// The web demo's inference queue on its own: a job past the time limit is stopped and answered as a timeout, an
// inference process that dies is replaced, and the queue keeps answering.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';

import { InferencePool, JobTimeoutError } from '../../src/server/inference-pool.ts';
import { saveTinyModels } from '../tiny-models.ts';

const files = saveTinyModels();
const pool = await InferencePool.start({
  concurrency: 1,
  maxQueue: 2,
  timeoutMs: 1, // every job runs out of time at its first ODE step
  init: {
    sets: [{ name: 'tiny', sources: { tokenizer: files.tokenizer, generator: files.generator } }],
    threads: 1,
    references: 0,
  },
});
after(() => pool.close());

const job = { kind: 'sample', set: 'tiny', class: 'circle', guidance: 1.5, n: 1, steps: 50, seed: 0 } as const;

test('a job past the time limit is answered as a timeout', async () => {
  await assert.rejects(pool.run(job), (e: Error) => e instanceof JobTimeoutError && /limit of 0\.0 s/.test(e.message));
  assert.equal(pool.running, 0);
});

test('an inference process that dies is replaced, and the queue keeps answering', async () => {
  const [pid] = pool.pids;
  process.kill(pid!, 'SIGKILL');
  while (pool.restarts === 0) await new Promise((r) => setTimeout(r, 20));
  assert.notEqual(pool.pids[0], pid);
  await assert.rejects(pool.run(job), JobTimeoutError); // waits in the queue for the new process to load
});
