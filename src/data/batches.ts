// Batch assembly: which images a batch holds and how each is transformed depend only on (seed, epoch, batch
// index). Pure JavaScript (no libtorch), so it runs in the batch worker as well as in the main thread.
import { Rng, hashInts } from './prng.ts';
import { transformInto, transformedSize, type TransformSpec } from './transforms.ts';
import type { ImageArray } from './image-array.ts';

export interface BatchPosition {
  epoch: number;
  index: number;
}

export interface RawBatch extends BatchPosition {
  /** One float array per view spec, each (B, C', H', W') in [-1, 1]. */
  views: Float32Array[];
  labels: Int32Array;
  /** Data-set indices of the batch's images. */
  indices: Int32Array;
}

export const batchesPerEpoch = (n: number, batchSize: number): number => Math.floor(n / batchSize);

/** Refuses a start position (from a checkpoint) that is not a batch of this data set and batch size. */
export function checkPosition(p: BatchPosition, n: number, batchSize: number): void {
  const perEpoch = batchesPerEpoch(n, batchSize);
  if (!(Number.isSafeInteger(p.epoch) && p.epoch >= 0 && Number.isSafeInteger(p.index) && p.index >= 0))
    throw new Error(`the data position ${JSON.stringify(p)} is not {epoch, index} of whole numbers`);
  if (p.index >= perEpoch)
    throw new Error(
      `the data position ${JSON.stringify(p)} is past the ${perEpoch} batches of an epoch (${n} items in batches ` +
        `of ${batchSize}): was the checkpoint made with another data set or batch size?`,
    );
}

/** The position after `p`. */
export function nextPosition(p: BatchPosition, n: number, batchSize: number): BatchPosition {
  return p.index + 1 < batchesPerEpoch(n, batchSize)
    ? { epoch: p.epoch, index: p.index + 1 }
    : { epoch: p.epoch + 1, index: 0 };
}

const permutations = new Map<string, Int32Array>();

/**
 * The images of batch `index` in `epoch`: a seeded permutation of the data set per epoch (incomplete batches dropped).
 */
export function batchIndices(n: number, batchSize: number, seed: number, p: BatchPosition): Int32Array {
  const key = `${n}:${seed}:${p.epoch}`;
  let perm = permutations.get(key);
  if (!perm) {
    if (permutations.size > 4) permutations.clear();
    perm = new Rng(hashInts(seed, p.epoch)).permutation(n);
    permutations.set(key, perm);
  }
  return perm.slice(p.index * batchSize, (p.index + 1) * batchSize);
}

/**
 * This process's part of every global batch of `batchSize`: rank r of `world` takes the r-th of `world` equal
 * consecutive slices, so N processes with batch b see exactly the samples of one process with batch N·b.
 */
export interface Shard {
  rank: number;
  world: number;
}
export const SINGLE: Shard = { rank: 0, world: 1 };

/** Images per process of a global batch split `shard.world` ways (it must divide evenly). */
export function localBatchSize(batchSize: number, shard: Shard): number {
  if (batchSize % shard.world !== 0)
    throw new Error(
      `batchSize ${batchSize} is the global batch; it must divide evenly among ${shard.world} processes ` +
        `(set batchSize to a multiple of ${shard.world})`,
    );
  return batchSize / shard.world;
}

/** The data-set indices of this process's part of batch `p` (see Shard). */
export function shardIndices(n: number, batchSize: number, seed: number, p: BatchPosition, shard: Shard): Int32Array {
  const b = localBatchSize(batchSize, shard);
  return batchIndices(n, batchSize, seed, p).subarray(shard.rank * b, (shard.rank + 1) * b);
}

export function produceBatch(
  d: ImageArray,
  views: TransformSpec[],
  batchSize: number,
  seed: number,
  p: BatchPosition,
  augment = true,
  shard: Shard = SINGLE,
): RawBatch {
  if (batchesPerEpoch(d.n, batchSize) === 0)
    throw new Error(`the data set has ${d.n} images, fewer than one batch of ${batchSize}`);
  const indices = shardIndices(d.n, batchSize, seed, p, shard).slice();
  const first = shard.rank * indices.length;
  const size = d.c * d.h * d.w;
  const out = views.map((v) => new Float32Array(indices.length * transformedSize(v, d.c)));
  for (let i = 0; i < indices.length; i++) {
    // one augmentation stream per image, keyed by its place in the global batch: any split transforms it alike
    const rng = augment ? new Rng(hashInts(seed, p.epoch, p.index, 1, first + i)) : null;
    const img = { data: d.pixels.subarray(indices[i]! * size, (indices[i]! + 1) * size), c: d.c, h: d.h, w: d.w };
    views.forEach((v, k) => transformInto(img, v, rng, out[k]!, i * transformedSize(v, d.c)));
  }
  return { epoch: p.epoch, index: p.index, views: out, labels: Int32Array.from(indices, (i) => d.labels[i]!), indices };
}
