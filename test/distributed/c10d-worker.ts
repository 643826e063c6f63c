// One rank of the c10d tests (test/distributed/c10d.test.ts): joins a 2-process gloo group through the store named
// in its environment, runs the scenario named in SCENARIO and prints its results as one JSON line.
import { ProcessGroup, Tensor, manualSeed, tensor, tidy } from '../../src/index.ts';
import { native } from '../../src/engine/native.ts';

const rank = Number(process.env.RANK);
const world = Number(process.env.WORLD_SIZE);
const timeoutMs = Number(process.env.TIMEOUT_MS ?? 5000);
const store = process.env.STORE_FILE
  ? { file: process.env.STORE_FILE }
  : { host: '127.0.0.1', port: Number(process.env.MASTER_PORT) };
const pg = new ProcessGroup({ rank, worldSize: world, timeoutMs, store });
const out: Record<string, unknown> = { rank, worldSize: pg.worldSize, backend: pg.backend };
const list = (t: Tensor): number[] => t.toArray() as number[];

switch (process.env.SCENARIO) {
  case 'collectives': {
    out.sum = list(pg.allReduce(tensor([rank + 1, 10 * (rank + 1)]), 'sum'));
    out.max = list(pg.allReduce(tensor([rank, -rank]), 'max'));
    out.broadcast = list(pg.broadcast(tensor([rank, rank, rank]), 1));
    out.gathered = pg.allGather(tensor([rank * 2, rank * 2 + 1])).map(list);
    pg.barrier();
    break;
  }
  case 'peer-exits': {
    // rank 1 leaves without taking part: rank 0's all-reduce must fail, not hang
    if (rank === 1) process.exit(0);
    try {
      pg.allReduce(tensor([1]));
      out.error = null;
    } catch (e) {
      out.error = (e as Error).message;
    }
    break;
  }
  case 'peer-silent': {
    // rank 1 stays alive but never joins the barrier: rank 0's must time out
    if (rank === 1) {
      const until = Date.now() + 2 * timeoutMs;
      while (Date.now() < until);
      break;
    }
    try {
      pg.barrier();
      out.error = null;
    } catch (e) {
      out.error = (e as Error).message;
    }
    break;
  }
  case 'reducer': {
    // w: used on both ranks; u: used on rank 0 only; never: used nowhere. Two micro-steps, the first without sync.
    manualSeed(0);
    const w = tensor([1, 2, 3]).requiresGrad_();
    const u = tensor([0.5]).requiresGrad_();
    const never = tensor([7]).requiresGrad_();
    const r = native.createReducer(pg.handle, [w.handle, u.handle, never.handle], 8);
    out.buckets = native.reducerInfo(r).bucketBytes.length;
    for (const [micro, sync] of [
      [0, false],
      [1, true],
    ] as const) {
      native.reducerPrepare(r, sync);
      tidy(() => {
        const x = tensor([rank + 1 + micro, 1, -1]);
        let loss = w
          .mul(x)
          .sum()
          .mul(rank + 1);
        if (rank === 0) loss = loss.add(u.mul(micro + 1).sum());
        loss.backward();
      });
    }
    out.finalize = native.reducerFinalize(r, timeoutMs);
    out.w = list(w.grad!);
    out.u = list(u.grad!);
    out.never = never.grad === null;
    break;
  }
}
pg.destroy();
process.stdout.write(`${JSON.stringify(out)}\n`);
