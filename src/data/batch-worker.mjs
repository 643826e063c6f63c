// The batch worker: assembles batches ahead of the training loop, off the main thread (see loader.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
const { produceBatch, nextPosition } = await import('./batches.ts');

const { dataset, views, batchSize, seed, augment, prefetch, shard } = workerData;
let position = workerData.position;
let inFlight = 0;
let stopped = false;

function pump() {
  while (!stopped && inFlight < prefetch) {
    const b = produceBatch(dataset, views, batchSize, seed, position, augment, shard);
    parentPort.postMessage({ type: 'batch', batch: b }, [
      ...b.views.map((v) => v.buffer),
      b.labels.buffer,
      b.indices.buffer,
    ]);
    inFlight++;
    position = nextPosition(position, dataset.n, batchSize);
  }
}

parentPort.on('message', (m) => {
  if (m.type === 'ack') inFlight--;
  if (m.type === 'stop') stopped = true;
  if (!stopped) pump();
});
try {
  pump();
} catch (e) {
  parentPort.postMessage({ type: 'error', message: e.message });
}
