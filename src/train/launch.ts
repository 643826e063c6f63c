// The launcher behind `reptok train … --nproc-per-node N`: starts N worker processes on this machine with torchrun's
// environment (WORLD_SIZE, RANK, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) and supervises them. When
// a worker fails (an error, a crash, kill -9), the others are stopped and the launcher exits with that worker's
// message; the survivors' collectives fail at once or within their timeout, so nothing hangs.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';

export interface LaunchOptions {
  nprocPerNode: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  /** 0: a free port (one machine only). */
  masterPort: number;
  log?: (msg: string) => void;
}

/** A TCP port nobody listens on right now (for a one-machine rendezvous). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Seconds the other workers get to stop on their own before they are killed. */
const GRACE_MS = 10_000;

/**
 * Runs `script args` as this node's workers and resolves with the exit code for the launcher: 0 when every worker
 * succeeded, 130 when they stopped on Ctrl-C, else the first failure's.
 */
export async function launchWorkers(script: string, args: string[], o: LaunchOptions): Promise<number> {
  const log = o.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  const { nprocPerNode: n, nnodes, nodeRank } = o;
  if (!(Number.isInteger(n) && n >= 1)) throw new Error(`--nproc-per-node must be a positive integer, got ${n}`);
  if (!(Number.isInteger(nnodes) && nnodes >= 1)) throw new Error(`--nnodes must be a positive integer, got ${nnodes}`);
  if (!(Number.isInteger(nodeRank) && nodeRank >= 0 && nodeRank < nnodes))
    throw new Error(`--node-rank must be in 0..${nnodes - 1}, got ${nodeRank}`);
  if (nnodes > 1 && !o.masterPort)
    throw new Error('--master-port is required with --nnodes > 1 (the same on every node)');
  if (nnodes > 1 && !o.masterAddr)
    throw new Error("--master-addr is required with --nnodes > 1 (node 0's address, the same on every node)");
  const masterAddr = nnodes > 1 ? o.masterAddr : o.masterAddr || '127.0.0.1';
  const masterPort = o.masterPort || (await freePort(masterAddr));
  const world = n * nnodes;
  const threads = process.env.OMP_NUM_THREADS ?? String(Math.max(1, Math.floor(availableParallelism() / n)));
  log(
    `launcher: ${n} worker(s) on node ${nodeRank} of ${nnodes} (world ${world}), ` +
      `rendezvous ${masterAddr}:${masterPort}, ` +
      `${threads} thread(s) each`,
  );

  const workers: {
    rank: number;
    child: ChildProcess;
    exit?: { code: number | null; signal: NodeJS.Signals | null };
  }[] = [];
  for (let local = 0; local < n; local++) {
    const rank = nodeRank * n + local;
    const child = spawn(process.execPath, [...process.execArgv, script, ...args], {
      env: {
        ...process.env,
        WORLD_SIZE: String(world),
        RANK: String(rank),
        LOCAL_RANK: String(local),
        LOCAL_WORLD_SIZE: String(n),
        GROUP_RANK: String(nodeRank),
        MASTER_ADDR: masterAddr,
        MASTER_PORT: String(masterPort),
        OMP_NUM_THREADS: threads,
      },
      // rank 0 owns the terminal (progress bar); the others' messages are prefixed with their rank
      stdio: rank === 0 ? 'inherit' : ['ignore', 'pipe', 'pipe'],
    });
    for (const stream of [child.stdout, child.stderr]) {
      let pending = '';
      stream?.on('data', (d: Buffer) => {
        const lines = (pending + d.toString()).split('\n');
        pending = lines.pop()!;
        for (const line of lines) process.stderr.write(`[rank ${rank}] ${line}\n`);
      });
      stream?.on('end', () => pending && process.stderr.write(`[rank ${rank}] ${pending}\n`));
    }
    workers.push({ rank, child });
  }

  // Ctrl-C or a SIGTERM to the launcher: the workers checkpoint and stop together (they agree on the step).
  const forward = (): void => {
    for (const w of workers) if (!w.exit) w.child.kill('SIGINT');
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);

  let failure: { rank: number; pid: number | undefined; code: number | null; signal: NodeJS.Signals | null } | null =
    null;
  let killTimer: NodeJS.Timeout | null = null;
  try {
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve) =>
            w.child.on('exit', (code, signal) => {
              w.exit = { code, signal };
              if (!failure && (signal !== null || (code !== 0 && code !== 130))) {
                failure = { rank: w.rank, pid: w.child.pid, code, signal };
                const others = workers.filter((x) => !x.exit);
                if (others.length)
                  log(`launcher: worker rank ${w.rank} failed; stopping the other ${others.length} worker(s)`);
                for (const x of others) x.child.kill('SIGTERM');
                killTimer = setTimeout(() => {
                  for (const x of workers) if (!x.exit) x.child.kill('SIGKILL');
                }, GRACE_MS);
              }
              resolve();
            }),
          ),
      ),
    );
  } finally {
    process.off('SIGINT', forward);
    process.off('SIGTERM', forward);
    if (killTimer) clearTimeout(killTimer);
  }
  if (failure) {
    const f = failure as { rank: number; pid: number | undefined; code: number | null; signal: NodeJS.Signals | null };
    log(
      `reptok train: worker rank ${f.rank} (pid ${f.pid}) ` +
        `${f.signal ? `was killed by ${f.signal}` : `exited with code ${f.code}`}; ` +
        'the run stopped. Continue it with --resume (with any number of processes).',
    );
    return f.code && f.code > 0 ? f.code : 1;
  }
  return workers.some((w) => w.exit!.code === 130) ? 130 : 0;
}
