// Data-parallel training across processes (and machines) on torch's c10d, as PyTorch's DistributedDataParallel does
// it: every rank holds the whole model; parameters and buffers start as rank 0's; each rank computes gradients on
// its part of the global batch, and a reducer averages them with bucketed all-reduces that start while backward is
// still running (native/distributed.cc); so every rank applies the same update and AdamW, EMA and clipping stay
// identical everywhere. Rank 0 alone writes checkpoints, logs and samples.
//
// Environment (torchrun's conventions, set by `reptok train --nproc-per-node N` or any external launcher):
//   WORLD_SIZE, RANK, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT
// REPTOK_STORE_FILE=<path> rendezvouses through a FileStore instead of MASTER_ADDR:MASTER_PORT (one host).
import { ProcessGroup, Tensor, cat, noGrad, tensor, tidy, type Device } from '../engine/index.ts';
import { native, type Handle } from '../engine/native.ts';
import type { Module } from '../nn/index.ts';
import type { Ranks } from '../models/self-distillation.ts';
import type { Shard } from '../data/batches.ts';

export interface DistributedEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
  storeFile: string;
}

function intVar(env: NodeJS.ProcessEnv, name: string, fallback?: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') {
    if (fallback !== undefined) return fallback;
    throw new Error(`${name} is not set: a data-parallel worker needs WORLD_SIZE, RANK and MASTER_ADDR/MASTER_PORT`);
  }
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 0) throw new Error(`${name}=${raw} is not a non-negative integer`);
  return v;
}

/** The launcher's environment, or null when this process runs alone (WORLD_SIZE unset or 1). */
export function distributedEnv(env: NodeJS.ProcessEnv = process.env): DistributedEnv | null {
  const worldSize = intVar(env, 'WORLD_SIZE', 1);
  if (worldSize <= 1) return null;
  const rank = intVar(env, 'RANK');
  if (rank >= worldSize) throw new Error(`RANK=${rank} is not below WORLD_SIZE=${worldSize}`);
  const storeFile = env.REPTOK_STORE_FILE ?? '';
  return {
    rank,
    worldSize,
    localRank: intVar(env, 'LOCAL_RANK', rank),
    localWorldSize: intVar(env, 'LOCAL_WORLD_SIZE', worldSize),
    masterAddr: env.MASTER_ADDR || '127.0.0.1',
    masterPort: storeFile ? 0 : intVar(env, 'MASTER_PORT'),
    storeFile,
  };
}

export interface DataParallelOptions {
  /** Rendezvous and collective timeout (ms): a stopped peer ends the run after at most this long. */
  timeoutMs: number;
  /** Gradient bucket size (MB): smaller starts communication earlier, larger has less per-message overhead. */
  bucketMb: number;
  device: Device;
}

/** Raised when a collective fails: a peer stopped, the network failed, or the timeout passed. */
export class DistributedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DistributedError';
  }
}

export class DataParallel {
  readonly group: ProcessGroup;
  readonly shard: Shard;
  readonly timeoutMs: number;
  /** Where collectives run: the CPU (gloo) or this rank's GPU (NCCL). */
  readonly device: Device;
  readonly #bucketBytes: number;
  #reducer: Handle | null = null;
  /** Time spent waiting for gradient all-reduces after backward (the part communication did not hide). */
  commMs = 0;

  constructor(
    readonly env: DistributedEnv,
    o: DataParallelOptions,
  ) {
    this.timeoutMs = o.timeoutMs;
    this.device = o.device;
    this.#bucketBytes = Math.max(1, Math.round(o.bucketMb * 2 ** 20));
    this.group = new ProcessGroup({
      rank: env.rank,
      worldSize: env.worldSize,
      timeoutMs: o.timeoutMs,
      backend: o.device === 'cpu' ? 'gloo' : 'nccl',
      store: env.storeFile ? { file: env.storeFile } : { host: env.masterAddr, port: env.masterPort },
    });
    this.shard = { rank: env.rank, world: env.worldSize };
  }

  get rank(): number {
    return this.env.rank;
  }

  get isLead(): boolean {
    return this.env.rank === 0;
  }

  /** Makes every rank's parameters and buffers rank 0's (one broadcast per dtype). */
  syncModule(m: Module): void {
    const tensors = [...m.parameters(), ...[...m.namedBuffers()].map(([, b]) => b)];
    const byType = new Map<string, Tensor[]>();
    for (const t of tensors) byType.set(`${t.dtype}@${t.device}`, [...(byType.get(`${t.dtype}@${t.device}`) ?? []), t]);
    noGrad(() => {
      for (const group of byType.values()) {
        tidy(() => {
          const flat = cat(group.map((t) => t.reshape([-1])));
          this.group.broadcast(flat, 0);
          let at = 0;
          for (const t of group) {
            t.copy_(flat.slice(0, at, at + t.numel).reshape(t.shape));
            at += t.numel;
          }
        });
      }
    });
  }

  /** Hooks the gradient accumulators of `params` (the trainable ones, in registration order). */
  attach(params: Tensor[]): void {
    this.#reducer = native.createReducer(
      this.group.handle,
      params.map((p) => p.handle),
      this.#bucketBytes,
    );
  }

  /** Call before each micro-step's backward: `sync` on the last one (the others only accumulate locally). */
  beforeBackward(sync: boolean): void {
    native.reducerPrepare(this.#reducer!, sync);
  }

  /** After the last micro-step's backward: the averaged gradients in every parameter's .grad. */
  reduceGradients(): { waitMs: number; unused: number } {
    const r = native.reducerFinalize(this.#reducer!, this.timeoutMs);
    this.commMs += r.waitMs;
    return r;
  }

  /** The mean of each value over the ranks (losses and metrics for the log). */
  mean(values: number[]): number[] {
    return tidy(() => {
      const t = this.group.allReduce(tensor(Float64Array.from(values), { device: this.device }), 'sum');
      return (t.toArray() as number[]).map((v) => v / this.env.worldSize);
    });
  }

  /**
   * Sums over the ranks for statistics of the global batch that stages compute in their loss (the self-distillation
   * centring); in place, with the collective timeout.
   */
  get ranks(): Ranks {
    const reduce = (t: Tensor, op: 'sum' | 'max') => {
      try {
        return this.group.allReduce(t, op, this.timeoutMs);
      } catch (e) {
        throw new DistributedError(
          `an all-reduce of batch statistics failed on rank ${this.rank}: ${(e as Error).message}\n` +
            'Another worker has probably stopped (see its error), or the network failed; continue with --resume.',
        );
      }
    };
    return { size: this.env.worldSize, sum: (t) => reduce(t, 'sum'), max: (t) => reduce(t, 'max') };
  }

  /** Whether `flag` is set on any rank (a stop request reaches every rank at the same step). */
  any(flag: boolean): boolean {
    return tidy(() => this.group.allReduce(tensor([flag ? 1 : 0], { device: this.device }), 'max').item() === 1);
  }

  destroy(): void {
    this.#reducer = null;
    this.group.destroy();
  }
}
