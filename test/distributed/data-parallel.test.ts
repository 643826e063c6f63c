// Data-parallel training through `reptok train --nproc-per-node 2` (gloo, TCPStore on 127.0.0.1): 2 processes with
// the global batch split in two train the same weights as 1 process (float32 reduction-order tolerance) for the
// tokenizer and generator stages, with gradient accumulation, and for the ssl stage, whose centring (Sinkhorn-Knopp
// or DINO's running centre) is a statistic of the whole global batch, all-reduced across the ranks; kill -9 of a worker ends the run with a clear message,
// and the run resumes exactly, also with 1 process; plain `reptok train` under an external launcher works too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { Tensor } from '../../src/index.ts';
import { checkpointName, listCheckpoints, loadCheckpoint } from '../../src/train/checkpoint.ts';
import { freePort } from '../../src/train/launch.ts';
import { ROOT } from '../helpers.ts';
import { syntheticFolder, tinyConfigs } from '../train/fixtures.ts';

const CLI = join(ROOT, 'bin', 'reptok.mjs');
const tmp = (p: string) => mkdtempSync(join(tmpdir(), p));
const PRESET = { ssl: 'fmnist-ssl', tokenizer: 'fmnist-tokenizer', generator: 'fmnist-generator' } as const;

function configFile(stage: keyof typeof PRESET, config: object): string {
  const file = join(tmp('reptok-cfg-'), `${stage}.json`);
  writeFileSync(file, JSON.stringify(config));
  return file;
}

const args = (stage: keyof typeof PRESET, out: string, config: string, ...more: string[]) => [
  CLI,
  'train',
  stage,
  '--preset',
  PRESET[stage],
  '--out',
  out,
  '--config',
  config,
  '--dist-timeout',
  '20',
  ...more,
];
const run = (a: string[]) => spawnSync(process.execPath, a, { encoding: 'utf8', env: { ...process.env, CI: '1' } });

/**
 * Two checkpoints agree within float32 reduction-order tolerance: the optimizer's moments (sums of gradients) to
 * 1e-6; weights to 1e-3, because AdamW's normalised step m/(√v + ε) turns rounding noise in a gradient of ~ε into a
 * step of up to lr either way (seen: one mixer bias with a near-zero gradient, 1.5e-4 apart after 3 steps; every
 * other weight within 1e-7).
 */
function assertClose(a: string, b: string, tol = { optimizer: 1e-6 }): void {
  const [ca, cb] = [loadCheckpoint(a), loadCheckpoint(b)];
  assert.equal(ca.step, cb.step);
  assert.deepEqual(ca.data, cb.data);
  assert.equal(ca.ema === null, cb.ema === null, 'EMA in one checkpoint only');
  const parts: [string, Map<string, any>, Map<string, any>, number][] = [
    ['model', ca.model, cb.model, 1e-3],
    ...(ca.ema ? [['ema', ca.ema, cb.ema!, 1e-3] as [string, Map<string, any>, Map<string, any>, number]] : []),
    ['optimizer', ca.optimizer.tensors, cb.optimizer.tensors, tol.optimizer],
    ['rng', ca.rng, cb.rng, 0],
  ];
  for (const [part, x, y, tol] of parts) {
    assert.equal(x.size, y.size, `${part}: different keys`);
    for (const [k, v] of x) {
      const w = y.get(k)!;
      const diff = v.dtype === 'uint8' || v.dtype === 'int64' ? (v.equal(w) ? 0 : 1) : v.sub(w).abs().max().item();
      assert.ok(diff <= tol, `${part} ${k} differs by ${diff}`);
    }
  }
}

test('2 processes × half the batch train tokenizer and generator like 1 process (with accumulation)', async () => {
  const data = `folder:${await syntheticFolder()}`;
  const tok = configFile('tokenizer', { ...tinyConfigs(data).tokenizer, gradAccum: 2 });
  const [one, two] = [tmp('reptok-dp1-'), tmp('reptok-dp2-')];
  const r1 = run(args('tokenizer', one, tok, '--steps', '3'));
  assert.equal(r1.status, 0, r1.stderr);
  const r2 = run(args('tokenizer', two, tok, '--steps', '3', '--nproc-per-node', '2'));
  assert.equal(r2.status, 0, r2.stderr);
  assert.match(r2.stderr, /data parallel: 2 processes \(gloo\), 4 images each per batch/);
  assertClose(join(one, checkpointName(3)), join(two, checkpointName(3)));
  // rank 0 alone writes: one metrics line per step, with the loss averaged over the ranks like 1 process's
  const losses = (dir: string) =>
    readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).loss)
      .filter((l) => l !== undefined);
  const [l1, l2] = [losses(one), losses(two)];
  assert.equal(l2.length, 3);
  l1.forEach((l, i) => assert.ok(Math.abs(l - l2[i]) < 1e-4, `step ${i + 1}: loss ${l} vs ${l2[i]}`));

  const tokenizer = join(one, 'tokenizer.safetensors');
  const gen = (cacheDir: string) =>
    configFile('generator', { ...tinyConfigs(data, { tokenizer }).generator, cacheDir, gradAccum: 2 });
  const [g1, g2] = [tmp('reptok-gen1-'), tmp('reptok-gen2-')];
  const s1 = run(args('generator', g1, gen(tmp('reptok-cache1-')), '--steps', '3'));
  assert.equal(s1.status, 0, s1.stderr);
  // a fresh cache: each rank encodes and writes its part of the tokens
  const cache2 = tmp('reptok-cache2-');
  const s2 = run(args('generator', g2, gen(cache2), '--steps', '3', '--nproc-per-node', '2'));
  assert.equal(s2.status, 0, s2.stderr);
  assertClose(join(g1, checkpointName(3)), join(g2, checkpointName(3)));
});

test('ssl: 2 processes × half the batch train like 1 process; the centring sees the global batch', async () => {
  const data = `folder:${await syntheticFolder()}`;
  // KoLeo off: its nearest neighbours are searched within each process's batch (as in DINOv2), by design
  for (const [centering, gradAccum] of [
    ['sinkhorn', 2],
    ['ema', 1],
  ] as const) {
    // float32: the comparison's tolerance is float32 reduction order (bf16, the default on CPUs with native bf16
    // products, rounds each process's half-batch activations differently)
    const config = configFile('ssl', {
      ...tinyConfigs(data).ssl,
      centering,
      gradAccum,
      koleoWeight: 0,
      precision: 'fp32',
    });
    const [one, two] = [tmp('reptok-ssl1-'), tmp('reptok-ssl2-')];
    const r1 = run(args('ssl', one, config, '--steps', '3'));
    assert.equal(r1.status, 0, r1.stderr);
    const r2 = run(args('ssl', two, config, '--steps', '3', '--nproc-per-node', '2'));
    assert.equal(r2.status, 0, r2.stderr);
    // Student, teacher and optimizer within float32 reduction-order tolerance (1e-6 on the moments). Sinkhorn-Knopp
    // needs its sums and its exp() shift taken over the global batch: a shift per rank missed this by 1.6e-6, each
    // rank centring its own batch by 1.3e-3.
    const [c1, c2] = [join(one, checkpointName(3)), join(two, checkpointName(3))];
    assertClose(c1, c2, { optimizer: 1e-6 });
    if (centering === 'ema') {
      // the running centre: the global batch's mean (each rank's own mean puts it 1e-3 off)
      const [a, b] = [c1, c2].map((c) => loadCheckpoint(c).model.get('center')!) as [Tensor, Tensor];
      const diff = a.sub(b).abs().max().item();
      assert.ok(a.abs().max().item() > 0.1, 'the running centre moved');
      assert.ok(diff < 1e-6, `centres differ by ${diff}`);
    }
  }
});

test('kill -9 of a worker stops the run with a clear message; 1 process resumes it like an unbroken run', async () => {
  const data = `folder:${await syntheticFolder()}`;
  const config = configFile('tokenizer', {
    ...tinyConfigs(data).tokenizer,
    checkpointEvery: 2,
    keepCheckpoints: 50,
    warmupSteps: 1000, // the learning rate does not depend on the total number of steps
  });
  const [whole, broken] = [tmp('reptok-whole-'), tmp('reptok-broken-')];
  const full = run(args('tokenizer', whole, config, '--steps', '6'));
  assert.equal(full.status, 0, full.stderr);

  const launcher = spawn(
    process.execPath,
    args('tokenizer', broken, config, '--steps', '400', '--nproc-per-node', '2'),
    {
      env: { ...process.env, CI: '1' },
    },
  );
  let stderr = '';
  launcher.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => launcher.on('exit', (code) => resolve(code)));
  // once the checkpoint of step 2 exists, kill -9 the worker of rank 1
  while (!existsSync(join(broken, checkpointName(2)))) await new Promise((r) => setTimeout(r, 20));
  const workers = spawnSync('pgrep', ['-P', String(launcher.pid)], { encoding: 'utf8' })
    .stdout.trim()
    .split('\n')
    .map(Number);
  const rank1 = workers.find((pid) => readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes('RANK=1'));
  assert.ok(rank1, `no worker of rank 1 among ${workers}`);
  process.kill(rank1, 'SIGKILL');
  const code = await exited;
  assert.notEqual(code, 0);
  assert.match(stderr, /worker rank 1 \(pid \d+\) was killed by SIGKILL; the run stopped\. Continue it with --resume/);
  assert.ok(!existsSync(join(broken, checkpointName(400))));

  // resume from step 2 with a single process (checkpoints written after it are removed first)
  for (const c of listCheckpoints(broken)) if (c.step > 2) rmSync(c.path);
  const resumed = run(args('tokenizer', broken, config, '--steps', '6', '--resume'));
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, /resumed from .*step-00000002\.safetensors at step 2/);
  assertClose(join(whole, checkpointName(6)), join(broken, checkpointName(6)));
});

test('plain `reptok train` under an external launcher (torchrun variables) trains data-parallel', async () => {
  const data = `folder:${await syntheticFolder()}`;
  const config = configFile('tokenizer', tinyConfigs(data).tokenizer);
  const [out, port] = [tmp('reptok-ext-'), await freePort()];
  const codes = await Promise.all(
    [0, 1].map(
      (rank) =>
        new Promise<{ code: number | null; stderr: string }>((resolve) => {
          const child = spawn(process.execPath, args('tokenizer', out, config, '--steps', '2'), {
            env: {
              ...process.env,
              CI: '1',
              ...{ WORLD_SIZE: '2', RANK: String(rank), LOCAL_RANK: String(rank), LOCAL_WORLD_SIZE: '2' },
              ...{ MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), OMP_NUM_THREADS: '1' },
            },
          });
          let stderr = '';
          child.stderr.on('data', (d) => (stderr += d));
          child.on('exit', (code) => resolve({ code, stderr }));
        }),
    ),
  );
  for (const c of codes) assert.equal(c.code, 0, c.stderr);
  assert.match(codes[0]!.stderr, /data parallel: 2 processes \(gloo\), 4 images each per batch/);
  assert.equal(codes[1]!.stderr.trim(), '', 'rank 1 logs nothing');
  assert.ok(existsSync(join(out, checkpointName(2))));
});
