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

export function produceBatch(
  d: ImageArray,
  views: TransformSpec[],
  batchSize: number,
  seed: number,
  p: BatchPosition,
  augment = true,
): RawBatch {
  if (batchesPerEpoch(d.n, batchSize) === 0)
    throw new Error(`the data set has ${d.n} images, fewer than one batch of ${batchSize}`);
  const indices = batchIndices(d.n, batchSize, seed, p);
  const rng = augment ? new Rng(hashInts(seed, p.epoch, p.index, 1)) : null;
  const size = d.c * d.h * d.w;
  const out = views.map((v) => new Float32Array(batchSize * transformedSize(v, d.c)));
  for (let i = 0; i < indices.length; i++) {
    const img = { data: d.pixels.subarray(indices[i]! * size, (indices[i]! + 1) * size), c: d.c, h: d.h, w: d.w };
    views.forEach((v, k) => transformInto(img, v, rng, out[k]!, i * transformedSize(v, d.c)));
  }
  return { epoch: p.epoch, index: p.index, views: out, labels: Int32Array.from(indices, (i) => d.labels[i]!), indices };
}
