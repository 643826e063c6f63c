// Process groups on torch's c10d (see native/distributed.cc): rendezvous through a TCPStore at MASTER_ADDR:MASTER_PORT
// (rank 0 hosts it) or a FileStore on a shared file system, backend gloo on the CPU and NCCL where libtorch was
// built with CUDA. Every collective is synchronous and has a timeout: a stopped peer surfaces as an error (at once
// when its connection closes, at the latest after the timeout), never as a hang.
import { native, type Handle } from './native.ts';
import { Tensor } from './tensor.ts';

export type ReduceOp = 'sum' | 'max' | 'min' | 'product';

export interface ProcessGroupOptions {
  rank: number;
  worldSize: number;
  /** Rendezvous and collective timeout (ms). */
  timeoutMs: number;
  /** 'gloo' (CPU tensors) or 'nccl' (CUDA tensors; CUDA builds of libtorch only). */
  backend?: 'gloo' | 'nccl';
  /** TCPStore at host:port (rank 0 serves it), or a FileStore at `file` (every rank on one file system). */
  store: { host: string; port: number } | { file: string };
  /** The address gloo binds to (default: 127.0.0.1 when the store is on this host, else the hostname's address). */
  glooHostname?: string;
}

export class ProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  readonly backend: string;
  readonly timeoutMs: number;
  #handle: Handle | null;

  /** Joins the group; blocks until all `worldSize` ranks have (or the timeout passes). */
  constructor(o: ProcessGroupOptions) {
    const local = 'file' in o.store || isLoopback(o.store.host);
    this.#handle = native.initProcessGroup({
      backend: o.backend ?? 'gloo',
      rank: o.rank,
      worldSize: o.worldSize,
      timeoutMs: o.timeoutMs,
      ...('file' in o.store
        ? { store: 'file' as const, path: o.store.file }
        : { store: 'tcp' as const, host: o.store.host, port: o.store.port, isServer: o.rank === 0 }),
      glooHostname: o.glooHostname ?? (local ? '127.0.0.1' : ''),
    });
    const info = native.groupInfo(this.#handle);
    this.rank = info.rank;
    this.worldSize = info.worldSize;
    this.backend = info.backend;
    this.timeoutMs = info.timeoutMs;
  }

  /** @internal the native handle (for the gradient reducer). */
  get handle(): Handle {
    if (!this.#handle) throw new Error('the process group was destroyed');
    return this.#handle;
  }

  /** Reduces `t` across ranks in place. */
  allReduce(t: Tensor, op: ReduceOp = 'sum', timeoutMs?: number): Tensor {
    native.allReduce(this.handle, t.handle, op, timeoutMs);
    return t;
  }

  /** Overwrites `t` on every rank with rank `root`'s. */
  broadcast(t: Tensor, root = 0, timeoutMs?: number): Tensor {
    native.broadcast(this.handle, t.handle, root, timeoutMs);
    return t;
  }

  /** Every rank's `t`, in rank order. */
  allGather(t: Tensor, timeoutMs?: number): Tensor[] {
    return native.allGather(this.handle, t.handle, timeoutMs).map((h) => new Tensor(h));
  }

  barrier(timeoutMs?: number): void {
    native.barrier(this.handle, timeoutMs);
  }

  /** Leaves the group (pending collectives finish first). */
  destroy(): void {
    if (this.#handle) native.destroyProcessGroup(this.#handle);
    this.#handle = null;
  }
}

const isLoopback = (host: string): boolean => host === 'localhost' || host === '::1' || host.startsWith('127.');
