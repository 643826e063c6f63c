// Streaming data sets in bounded memory: WebDataset-style tar shards (`<key>.png|jpg|webp` with optional
// `<key>.cls` label and `<key>.txt` caption, consecutive members sharing a key) or an image folder read lazily.
// Worker threads decode and resize the samples (stream-worker.mjs) with a bounded prefetch queue; every epoch each of
// the world×workers slots reads its share (whole shards when there are at least as many shards as slots, else every
// slots-th sample), shuffled in a bounded buffer. Corrupt samples are skipped and counted, never fatal.
//
// Unlike the in-memory loader, the order is the workers' interleaving, so N processes do not see exactly the samples
// of one (they see disjoint shares of each epoch). Resuming skips, undecoded, the samples consumed before the
// checkpoint.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { Worker } from 'node:worker_threads';

import { fromBytes, tensor } from '../engine/index.ts';
import { SINGLE, localBatchSize, type BatchPosition, type Shard } from './batches.ts';
import { IMAGE_EXTENSIONS } from '../io/image-decode.ts';
import type { Batch } from './loader.ts';
import { Rng, hashInts } from './prng.ts';
import { outSize, transformInto, transformedSize, type TransformSpec } from './transforms.ts';

export type StreamSource = { kind: 'tar'; items: string[] } | { kind: 'files'; items: string[]; labels: number[] };

/** `path`: a .tar shard, a folder of .tar shards, or an image folder (class = first sub-folder). */
export function streamSource(path: string): StreamSource {
  if (!existsSync(path)) throw new Error(`${path}: no such file or folder`);
  if (statSync(path).isFile()) {
    if (!path.endsWith('.tar')) throw new Error(`${path}: a streamed data set is a .tar shard or a folder`);
    return { kind: 'tar', items: [path] };
  }
  const shards = readdirSync(path)
    .filter((f) => f.endsWith('.tar'))
    .sort()
    .map((f) => join(path, f));
  if (shards.length) return { kind: 'tar', items: shards };
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (IMAGE_EXTENSIONS.has(extname(e.name).toLowerCase())) files.push(join(d, e.name));
    }
  };
  walk(path);
  if (!files.length) throw new Error(`${path}: no .tar shards and no images in this folder`);
  const classes = [...new Set(files.map((f) => relative(path, f).split(sep)[0]!))].sort();
  const top = (f: string) => relative(path, f).split(sep);
  return {
    kind: 'files',
    items: files,
    labels: files.map((f) => (top(f).length > 1 ? classes.indexOf(top(f)[0]!) : 0)),
  };
}

export interface StreamOptions {
  /** The global batch (split across ranks by `shard`). */
  batchSize: number;
  /** Decoded images are resized (shorter side) and center-cropped to size×size. */
  size: number;
  channels: 1 | 3;
  views: TransformSpec[];
  seed: number;
  shard?: Shard;
  /** Decode threads of this process. */
  workers?: number;
  /** Decoded samples each worker holds ready at most. */
  prefetch?: number;
  /** Samples (still encoded) each worker shuffles among. */
  shuffleBuffer?: number;
  position?: BatchPosition;
  /** Where unreadable samples are reported (the first ten, then a count when the loader closes). */
  log?: (msg: string) => void;
}

type Message =
  | { type: 'sample'; epoch: number; pixels: Uint8Array; label: number; caption: string }
  | { type: 'skip'; epoch: number; key: string; reason: string }
  | { type: 'end'; epoch: number }
  | { type: 'error'; message: string };

export class StreamLoader {
  readonly #o: Required<Omit<StreamOptions, 'position'>>;
  readonly #workers: Worker[] = [];
  readonly #queues: Message[][] = [];
  #position: BatchPosition;
  #wake: (() => void) | null = null;
  #failure: Error | null = null;
  #next = 0; // round-robin pointer
  /** Samples skipped as unreadable so far, with the first reasons. */
  skipped = 0;
  readonly skippedExamples: string[] = [];

  constructor(
    readonly source: StreamSource,
    o: StreamOptions,
  ) {
    this.#o = { workers: 2, prefetch: 8, shuffleBuffer: 64, log: () => {}, ...o, shard: o.shard ?? SINGLE };
    this.#position = o.position ?? { epoch: 0, index: 0 };
    const b = localBatchSize(o.batchSize, this.#o.shard);
    const W = this.#o.workers;
    const consumed = this.#position.index * b; // samples of this epoch taken before the checkpoint
    for (let w = 0; w < W; w++) {
      const worker = new Worker(new URL('./stream-worker.mjs', import.meta.url), {
        workerData: {
          source,
          slot: this.#o.shard.rank * W + w,
          slots: this.#o.shard.world * W,
          seed: o.seed,
          size: o.size,
          channels: o.channels,
          prefetch: this.#o.prefetch,
          shuffleBuffer: this.#o.shuffleBuffer,
          epoch: this.#position.epoch,
          skip: consumed > w ? Math.floor((consumed - w - 1) / W) + 1 : 0,
        },
      });
      worker.unref();
      this.#queues.push([]);
      worker.on('message', (m: Message) => {
        this.#queues[w]!.push(m);
        this.#wake?.();
      });
      worker.on('error', (e) => {
        this.#failure = e;
        this.#wake?.();
      });
      this.#workers.push(worker);
    }
  }

  get position(): BatchPosition {
    return { ...this.#position };
  }

  async #message(w: number): Promise<Message> {
    for (;;) {
      if (this.#failure) throw this.#failure;
      const q = this.#queues[w]!;
      const m = q[0];
      if (m?.type === 'error') throw new Error(`stream worker: ${m.message}`);
      if (m?.type === 'skip') {
        q.shift();
        this.skipped++;
        if (this.skippedExamples.length < 10) {
          this.skippedExamples.push(`${m.key}: ${m.reason}`);
          this.#o.log(`skipped an unreadable sample: ${m.key}: ${m.reason}`);
        }
        continue;
      }
      if (m) return m;
      await new Promise<void>((r) => (this.#wake = r));
      this.#wake = null;
    }
  }

  /** The next sample of the current epoch (round robin over the workers), or null when the epoch is over. */
  async #sample(): Promise<Extract<Message, { type: 'sample' }> | null> {
    const W = this.#workers.length;
    for (let tried = 0; tried < W; tried++) {
      const w = this.#next;
      this.#next = (this.#next + 1) % W;
      const m = await this.#message(w);
      if (m.type === 'sample' && m.epoch === this.#position.epoch) {
        this.#queues[w]!.shift();
        this.#workers[w]!.postMessage({ type: 'ack' });
        return m;
      }
    }
    return null; // every worker's next message is the end of this epoch
  }

  async next(): Promise<Batch> {
    const t0 = performance.now();
    const b = localBatchSize(this.#o.batchSize, this.#o.shard);
    const samples: Extract<Message, { type: 'sample' }>[] = [];
    while (samples.length < b) {
      const s = await this.#sample();
      if (s) {
        samples.push(s);
        continue;
      }
      // epoch over: the incomplete batch is dropped, as in the in-memory loader
      if (this.#position.index === 0 && samples.length === 0)
        throw new Error(`the stream has fewer than ${b} readable images per process in an epoch`);
      for (const q of this.#queues) q.shift(); // the end markers
      this.#position = { epoch: this.#position.epoch + 1, index: 0 };
      this.#next = 0;
      samples.length = 0;
    }
    const waitMs = performance.now() - t0;
    const p = this.#position;
    const { size, channels, seed, shard } = this.#o;
    const views = this.#o.views.map((spec) => {
      const per = transformedSize(spec, channels);
      const out = new Float32Array(b * per);
      samples.forEach((s, i) => {
        const rng = new Rng(hashInts(seed, p.epoch, p.index, 1, shard.rank * b + i));
        transformInto({ data: s.pixels, c: channels, h: size, w: size }, spec, rng, out, i * per);
      });
      const [h, w] = outSize(spec);
      return fromBytes(new Uint8Array(out.buffer), 'float32', [b, spec.channels ?? channels, h, w]);
    });
    this.#position = { epoch: p.epoch, index: p.index + 1 };
    return {
      epoch: p.epoch,
      index: p.index,
      views,
      labels: tensor(
        Int32Array.from(samples, (s) => s.label),
        { dtype: 'int64' },
      ),
      indices: new Int32Array(b).fill(-1),
      waitMs,
    };
  }

  close(): void {
    if (this.skipped) this.#o.log(`skipped ${this.skipped} unreadable sample(s) in all`);
    for (const w of this.#workers) {
      w.postMessage({ type: 'stop' });
      void w.terminate();
    }
  }
}
