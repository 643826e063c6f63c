// The data loader: batches of transformed image views as tensors, produced ahead of time by a worker thread so the
// model does not wait for data (`workers: 0` produces them in the main thread instead). Deterministic in
// (seed, epoch, batch index); `position` is what a checkpoint stores to resume exactly.
import { Worker } from 'node:worker_threads';

import { Tensor, fromBytes, tensor } from '../engine/index.ts';
import {
  SINGLE,
  batchesPerEpoch,
  checkPosition,
  localBatchSize,
  nextPosition,
  produceBatch,
  type BatchPosition,
  type RawBatch,
  type Shard,
} from './batches.ts';
import { outSize, type TransformSpec } from './transforms.ts';
import type { ImageArray } from './image-array.ts';

export interface LoaderOptions {
  batchSize: number;
  /** One spec per view of each image (several for multi-crop self-supervision). */
  views: TransformSpec[];
  seed: number;
  /** Batches prepared ahead. */
  prefetch?: number;
  /** 1: a worker thread assembles batches; 0: the main thread does. */
  workers?: 0 | 1;
  /** false: deterministic evaluation transforms (no random crops, flips or jitter). */
  augment?: boolean;
  position?: BatchPosition;
  /** This process's part of each (global) batch of `batchSize` in data-parallel training. */
  shard?: Shard;
}

export interface Batch extends BatchPosition {
  views: Tensor[]; // each (B, C, H, W) in [-1, 1]
  labels: Tensor; // (B) int64
  indices: Int32Array;
  /** Milliseconds the caller waited for this batch (data time). */
  waitMs: number;
}

export class DataLoader {
  readonly #d: ImageArray;
  readonly #o: Required<Omit<LoaderOptions, 'position'>>;
  #position: BatchPosition;
  #worker: Worker | null = null;
  readonly #ready: RawBatch[] = [];
  #waiting: { resolve: (b: RawBatch) => void; reject: (e: Error) => void } | null = null;
  #failure: Error | null = null;

  constructor(dataset: ImageArray, o: LoaderOptions) {
    this.#d = dataset;
    this.#o = { prefetch: 4, workers: 1, augment: true, ...o, shard: o.shard ?? SINGLE };
    localBatchSize(o.batchSize, this.#o.shard);
    this.#position = o.position ?? { epoch: 0, index: 0 };
    if (batchesPerEpoch(dataset.n, o.batchSize) === 0)
      throw new Error(
        `the data set has ${dataset.n} images, fewer than one batch of ${o.batchSize}; lower the batch size`,
      );
    checkPosition(this.#position, dataset.n, o.batchSize);
  }

  /** The position of the next batch `next()` returns (store it in checkpoints). */
  get position(): BatchPosition {
    return { ...this.#position };
  }

  get batchesPerEpoch(): number {
    return batchesPerEpoch(this.#d.n, this.#o.batchSize);
  }

  #start(): void {
    const o = this.#o;
    this.#worker = new Worker(new URL('./batch-worker.mjs', import.meta.url), {
      workerData: {
        dataset: this.#d,
        views: o.views,
        batchSize: o.batchSize,
        seed: o.seed,
        augment: o.augment,
        prefetch: o.prefetch,
        position: this.#position,
        shard: o.shard,
      },
    });
    this.#worker.unref();
    this.#worker.on('message', (m: { type: string; batch?: RawBatch; message?: string }) => {
      if (m.type === 'error') return this.#fail(new Error(`batch worker: ${m.message}`));
      const b = m.batch!;
      if (this.#waiting) {
        const w = this.#waiting;
        this.#waiting = null;
        w.resolve(b);
      } else this.#ready.push(b);
    });
    this.#worker.on('error', (e) => this.#fail(e));
  }

  #fail(e: Error): void {
    this.#failure = e;
    this.#waiting?.reject(e);
    this.#waiting = null;
  }

  async #raw(): Promise<RawBatch> {
    if (this.#o.workers === 0)
      return produceBatch(
        this.#d,
        this.#o.views,
        this.#o.batchSize,
        this.#o.seed,
        this.#position,
        this.#o.augment,
        this.#o.shard,
      );
    if (!this.#worker) this.#start();
    if (this.#failure) throw this.#failure;
    const b =
      this.#ready.shift() ?? (await new Promise<RawBatch>((resolve, reject) => (this.#waiting = { resolve, reject })));
    this.#worker!.postMessage({ type: 'ack' });
    if (b.epoch !== this.#position.epoch || b.index !== this.#position.index)
      throw new Error('batch worker out of order (internal error)');
    return b;
  }

  async next(): Promise<Batch> {
    const t0 = performance.now();
    const raw = await this.#raw();
    const waitMs = performance.now() - t0;
    this.#position = nextPosition(this.#position, this.#d.n, this.#o.batchSize);
    const B = raw.indices.length;
    const views = raw.views.map((v, k) => {
      const spec = this.#o.views[k]!;
      const [h, w] = outSize(spec);
      return fromBytes(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), 'float32', [
        B,
        spec.channels ?? this.#d.c,
        h,
        w,
      ]);
    });
    return {
      epoch: raw.epoch,
      index: raw.index,
      views,
      labels: tensor(raw.labels, { dtype: 'int64' }),
      indices: raw.indices,
      waitMs,
    };
  }

  /** Stops the worker (pending batches are dropped). */
  close(): void {
    this.#worker?.postMessage({ type: 'stop' });
    void this.#worker?.terminate();
    this.#worker = null;
  }
}
