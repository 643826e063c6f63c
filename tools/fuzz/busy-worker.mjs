// A worker thread that loops on small tensor ops (many N-API calls) until it is terminated (tools/fuzz/case.ts,
// kind 'worker').
import { parentPort } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
const { randn, tidy } = await import('../../src/index.ts');
parentPort.postMessage('running');
for (;;)
  tidy(() =>
    randn([4, 4])
      .matmul(randn([4, 4]))
      .add(1)
      .sum(),
  );
