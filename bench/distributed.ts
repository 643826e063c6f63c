// npm run bench:distributed — data-parallel throughput of the Fashion-MNIST tokenizer stage through `reptok train`:
// 1 process × 2 threads vs 2 processes × 1 thread (gloo on 127.0.0.1), same global batch, and the share of the step
// the 2-process run spends waiting for its gradient all-reduces (the part backward did not hide). JSON lines.
//   --steps 10   --batch 64   --bucket-mb 25
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { benchArgs, emit, median } from './peer.ts';

const args = benchArgs();
const steps = Number(args.get('steps', '10'));
const batch = Number(args.get('batch', '64'));
const bucketMb = args.get('bucket-mb', '25');
const CLI = join(import.meta.dirname, '..', 'bin', 'reptok.mjs');

function run(procs: number, threads: number): void {
  const out = mkdtempSync(join(tmpdir(), 'reptok-bench-dp-'));
  const config = join(out, '..', `${out.split('/').pop()}.json`);
  // threads 0: the launcher's cores / N per worker; logging every step, no validation or samples in the window
  writeFileSync(config, JSON.stringify({ batchSize: batch, logEvery: 1, valEvery: 10 ** 6, sampleEvery: 10 ** 6 }));
  const r = spawnSync(
    process.execPath,
    [
      CLI,
      ...['train', 'tokenizer', '--preset', 'fmnist-tokenizer', '--out', out, '--config', config],
      ...['--steps', String(steps), '--bucket-mb', bucketMb],
      ...(procs > 1 ? ['--nproc-per-node', String(procs)] : []),
    ],
    { encoding: 'utf8', env: { ...process.env, CI: '1', OMP_NUM_THREADS: String(threads) } },
  );
  if (r.status !== 0) throw new Error(`reptok train failed:\n${r.stderr}`);
  const records = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((m) => m.loss !== undefined);
  // step times from the cumulative clock, the first two steps (warm-up) left out
  const stepS = records.slice(2).map((m, i) => m.time_s - records[i + 1].time_s);
  const sec = median(stepS);
  const comm = procs > 1 ? median(records.slice(2).map((m) => m.comm_ms)) / 1000 : 0;
  emit({
    bench: 'data_parallel',
    stage: 'tokenizer',
    preset: 'fmnist-tokenizer',
    precision: JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).precision, // as the run resolved it
    processes: procs,
    threads_per_process: threads,
    global_batch: batch,
    step_s: sec,
    images_per_s: batch / sec,
    allreduce_wait_s: comm,
    allreduce_share: comm / sec,
    steps_timed: stepS.length,
  });
}

run(1, 2);
run(2, 1);
