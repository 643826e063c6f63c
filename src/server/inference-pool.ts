// The web demo's inference queue: a fixed number of inference processes (the concurrency), each running one job at
// a time, and a bounded queue in front of them. A full queue refuses at once (QueueFullError: answered 503 with
// Retry-After) instead of letting work pile up; a job that runs past the time limit is stopped — by the process
// itself at its next ODE step, or, if it does not answer, by ending the process — and the process is replaced.
// A process that dies (a crash in native code) fails only its own job and is replaced too.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import type { FromWorker, Job, JobResult, ModelSetInfo, ToWorker, WorkerInit } from './jobs.ts';

export interface PoolOptions {
  /** Inference processes (jobs that run at once). */
  concurrency: number;
  /** Jobs that may wait for a free process; one more is refused. */
  maxQueue: number;
  /** Longest a job may run. */
  timeoutMs: number;
  init: WorkerInit;
  log?: (message: string) => void;
}

/** The queue is full: try again later. */
export class QueueFullError extends Error {}
/** The job ran past the time limit. */
export class JobTimeoutError extends Error {}
/** The job's input was refused by the models (an unreadable image, an unknown class). */
export class JobInputError extends Error {}
/** The job failed inside the server. */
export class JobFailedError extends Error {}

/** How long a process that missed its deadline gets to answer before it is ended. */
const GRACE_MS = 2000;
const WORKER_MAIN = fileURLToPath(new URL('./worker-main.mjs', import.meta.url));

interface Pending {
  id: number;
  job: Job;
  enqueued: number;
  started?: number;
  resolve: (r: { result: JobResult; waitMs: number; runMs: number }) => void;
  reject: (e: Error) => void;
}

interface Slot {
  proc: ChildProcess;
  ready: boolean;
  current: Pending | null;
  timer: NodeJS.Timeout | null;
}

export class InferencePool {
  readonly #o: PoolOptions;
  readonly #slots: Slot[] = [];
  readonly #queue: Pending[] = [];
  #nextId = 0;
  #closed = false;
  /** What the model sets can do (from the first process's start-up). */
  info: ModelSetInfo[] = [];
  /** Processes replaced after a timeout or a crash. */
  restarts = 0;

  private constructor(o: PoolOptions) {
    this.#o = o;
  }

  /** Starts the processes and waits until each has loaded the models (throws what went wrong when one cannot). */
  static async start(o: PoolOptions): Promise<InferencePool> {
    const pool = new InferencePool(o);
    try {
      const infos = await Promise.all(Array.from({ length: o.concurrency }, () => pool.#spawn()));
      pool.info = infos[0]!;
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  /** Jobs waiting for a process. */
  get queued(): number {
    return this.#queue.length;
  }
  /** Jobs running now. */
  get running(): number {
    return this.#slots.filter((s) => s.current).length;
  }
  /** Process ids of the inference processes (for memory figures). */
  get pids(): number[] {
    return this.#slots.flatMap((s) => (s.proc.pid ? [s.proc.pid] : []));
  }

  /** Runs a job; `signal` (the request's) drops it from the queue when the client goes away before it starts. */
  run(job: Job, signal?: AbortSignal): Promise<{ result: JobResult; waitMs: number; runMs: number }> {
    if (this.#closed) return Promise.reject(new JobFailedError('the server is shutting down'));
    const idle = this.#slots.some((s) => s.ready && !s.current);
    if (!idle && this.#queue.length >= this.#o.maxQueue)
      return Promise.reject(new QueueFullError(`the server is busy (${this.#queue.length} requests waiting)`));
    return new Promise((resolve, reject) => {
      const p: Pending = { id: this.#nextId++, job, enqueued: performance.now(), resolve, reject };
      this.#queue.push(p);
      signal?.addEventListener('abort', () => {
        const i = this.#queue.indexOf(p);
        if (i >= 0) {
          this.#queue.splice(i, 1);
          reject(new JobFailedError('the client went away'));
        }
      });
      this.#dispatch();
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const p of this.#queue.splice(0)) p.reject(new JobFailedError('the server is shutting down'));
    await Promise.all(this.#slots.map((s) => this.#stop(s)));
  }

  // ---- processes -------------------------------------------------------------------------------------------------

  /** Starts one process into a new slot; resolves with its model descriptions once it is ready. */
  #spawn(slot?: Slot): Promise<ModelSetInfo[]> {
    const proc = fork(WORKER_MAIN, [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const s: Slot = slot ?? { proc, ready: false, current: null, timer: null };
    Object.assign(s, { proc, ready: false, current: null, timer: null });
    if (!slot) this.#slots.push(s);
    return new Promise((resolve, reject) => {
      proc.on('message', (m: FromWorker) => {
        if (m.type === 'ready') {
          s.ready = true;
          resolve(m.sets);
          this.#dispatch();
        } else if (m.type === 'failed') reject(new Error(m.message));
        else this.#finish(s, m);
      });
      proc.on('exit', (code, signal) => {
        if (s.proc !== proc) return; // an ended process already replaced
        if (!s.ready) {
          reject(new Error(`an inference process stopped while loading the models (${signal ?? code})`));
          return;
        }
        s.ready = false;
        const p = s.current;
        s.current = null;
        if (s.timer) clearTimeout(s.timer);
        if (this.#closed) return;
        p?.reject(new JobFailedError('the inference process stopped while running this request; it is restarted'));
        this.#replace(s, `stopped (${signal ?? `exit code ${code}`})`);
      });
      const init: ToWorker = { type: 'init', init: this.#o.init };
      proc.send(init);
    });
  }

  #replace(s: Slot, why: string): void {
    this.restarts++;
    this.#o.log?.(`inference process ${s.proc.pid} ${why}; starting a new one`);
    this.#spawn(s).catch((e) => {
      this.#o.log?.(`could not restart an inference process: ${(e as Error).message}`);
      if (!this.#slots.some((x) => x.ready))
        for (const p of this.#queue.splice(0)) p.reject(new JobFailedError('no inference process is running'));
    });
  }

  #stop(s: Slot): Promise<void> {
    if (s.proc.exitCode !== null || s.proc.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      s.proc.once('exit', () => resolve());
      s.proc.kill('SIGKILL');
    });
  }

  // ---- jobs ------------------------------------------------------------------------------------------------------

  #dispatch(): void {
    for (const s of this.#slots) {
      if (!s.ready || s.current || this.#queue.length === 0) continue;
      const p = this.#queue.shift()!;
      s.current = p;
      p.started = performance.now();
      const deadline = Date.now() + this.#o.timeoutMs;
      // the process stops itself at the deadline; one that does not answer soon after is ended
      s.timer = setTimeout(() => {
        s.current = null;
        p.reject(new JobTimeoutError(this.#timeoutMessage()));
        s.ready = false;
        s.proc.kill('SIGKILL');
        this.#replace(s, `did not finish a job within ${this.#o.timeoutMs + GRACE_MS} ms`);
      }, this.#o.timeoutMs + GRACE_MS);
      const m: ToWorker = { type: 'job', id: p.id, job: p.job, deadline };
      s.proc.send(m);
    }
  }

  #finish(s: Slot, m: Extract<FromWorker, { type: 'done' | 'error' }>): void {
    const p = s.current;
    if (!p || p.id !== m.id) return; // the answer to a job already given up on
    s.current = null;
    if (s.timer) clearTimeout(s.timer);
    const times = { waitMs: p.started! - p.enqueued, runMs: performance.now() - p.started! };
    if (m.type === 'done') p.resolve({ result: m.result, ...times });
    else
      p.reject(
        m.kind === 'input'
          ? new JobInputError(m.message)
          : m.kind === 'timeout'
            ? new JobTimeoutError(this.#timeoutMessage())
            : new JobFailedError(m.message),
      );
    this.#dispatch();
  }

  #timeoutMessage(): string {
    const limit = (this.#o.timeoutMs / 1000).toFixed(1);
    return `the request took longer than the server's limit of ${limit} s; try fewer images or frames`;
  }
}
