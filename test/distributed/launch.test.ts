// The launcher's and the workers' reading of torchrun's environment: what is accepted, and errors that name the
// variable or flag that is wrong (no processes are started here).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { distributedEnv } from '../../src/train/distributed.ts';
import { launchWorkers } from '../../src/train/launch.ts';

test('torchrun variables: one process without them, the rank and rendezvous with them, clear errors', () => {
  assert.equal(distributedEnv({}), null);
  assert.equal(distributedEnv({ WORLD_SIZE: '1', RANK: '0' }), null);
  assert.deepEqual(
    distributedEnv({ WORLD_SIZE: '4', RANK: '3', LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '2', MASTER_PORT: '29500' }),
    {
      rank: 3,
      worldSize: 4,
      localRank: 1,
      localWorldSize: 2,
      masterAddr: '127.0.0.1',
      masterPort: 29500,
      storeFile: '',
    },
  );
  assert.throws(() => distributedEnv({ WORLD_SIZE: '2', MASTER_PORT: '1' }), /RANK is not set/);
  assert.throws(() => distributedEnv({ WORLD_SIZE: '2', RANK: '2', MASTER_PORT: '1' }), /RANK=2 is not below/);
  assert.throws(() => distributedEnv({ WORLD_SIZE: '2', RANK: '0' }), /MASTER_PORT is not set/);
  assert.throws(() => distributedEnv({ WORLD_SIZE: 'two' }), /WORLD_SIZE=two is not a non-negative integer/);
});

test('launcher flags are checked before any worker starts', async () => {
  const o = { nprocPerNode: 2, nnodes: 1, nodeRank: 0, masterAddr: '', masterPort: 0, log: () => {} };
  await assert.rejects(launchWorkers('x', [], { ...o, nprocPerNode: 0 }), /--nproc-per-node must be a positive/);
  await assert.rejects(launchWorkers('x', [], { ...o, nnodes: 2, nodeRank: 2 }), /--node-rank must be in 0\.\.1/);
  await assert.rejects(launchWorkers('x', [], { ...o, nnodes: 2, nodeRank: 1 }), /--master-port is required/);
  await assert.rejects(
    launchWorkers('x', [], { ...o, nnodes: 2, nodeRank: 1, masterPort: 29500 }),
    /--master-addr is required/,
  );
});
