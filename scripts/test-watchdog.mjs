// The per-test time limit, preloaded by scripts/run-tests.mjs into every test file's process (node --import).
//
// Node 20's --test-timeout limits each test *file* as a whole, and a test that blocks the event loop inside a
// native call can never be interrupted from its own thread. So a worker thread keeps the clock: root-level hooks
// tell it when a test starts and ends, and when one runs longer than REPTOK_TEST_TIMEOUT_S seconds it
// writes the test's name to stderr and kills the process; the runner then reports that file as failed.
// In the runner's own process (no NODE_TEST_CONTEXT) this module does nothing.
import { writeSync } from 'node:fs';
import { Worker } from 'node:worker_threads';

if (process.env.NODE_TEST_CONTEXT) {
  const { after, afterEach, beforeEach } = await import('node:test');
  const limitMs = Number(process.env.REPTOK_TEST_TIMEOUT_S ?? 120) * 1000;
  const clock = new Worker(
    `
    const { parentPort, workerData } = require('node:worker_threads');
    const { writeSync } = require('node:fs');
    let current = null; // { name, since }
    parentPort.on('message', (m) => { current = m === null ? null : { name: m, since: Date.now() }; });
    setInterval(() => {
      if (current && Date.now() - current.since > workerData.limitMs) {
        writeSync(2, '\\nreptok test watchdog: "' + current.name + '" ran longer than ' + workerData.limitMs / 1000 +
          ' s (REPTOK_TEST_TIMEOUT_S); killing ' + workerData.file + '\\n');
        process.kill(workerData.pid, 'SIGKILL');
      }
    }, 200);
    `,
    { eval: true, workerData: { limitMs, pid: process.pid, file: process.argv[1] } },
  );
  clock.on('error', (e) => writeSync(2, `reptok test watchdog failed: ${e.message}\n`));
  clock.unref();
  // Every test and subtest restarts the clock. (Node runs no afterEach for a test that skipped itself: the next
  // test's start, or the end of the file, stops the clock instead.)
  beforeEach((t) => clock.postMessage(t.name));
  afterEach(() => clock.postMessage(null));
  after(() => clock.terminate());
}
