// Data sets held in memory as one uint8 array of images (N, C, H, W) in shared memory (so a worker thread can
// assemble batches from it without copies), with optional class labels and captions.
import { Tensor, fromBytes } from '../engine/index.ts';

export interface ImageArray {
  /** uint8 pixels (N, C, H, W), row-major, backed by a SharedArrayBuffer. */
  pixels: Uint8Array;
  n: number;
  c: number;
  h: number;
  w: number;
  /** Class index per image (−1 when unlabelled). */
  labels: Int32Array;
  /** Class names (index -> name). */
  classes: string[];
  /** One caption per image, when the data set has them. */
  captions?: string[];
  /** Where each image came from (for messages). */
  sources?: string[];
}

export function sharedBytes(length: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer(length));
}

/** A data set from uint8 images (N, C, H, W) and int labels already in memory. */
export function imageArray(
  pixels: Uint8Array,
  shape: [number, number, number, number],
  labels: ArrayLike<number>,
  classes: string[],
  captions?: string[],
): ImageArray {
  const [n, c, h, w] = shape;
  if (pixels.length !== n * c * h * w)
    throw new Error(`image array: ${pixels.length} bytes do not hold ${n}×${c}×${h}×${w} images`);
  const shared = pixels.buffer instanceof SharedArrayBuffer ? pixels : sharedBytes(pixels.length);
  if (shared !== pixels) shared.set(pixels);
  return { pixels: shared, n, c, h, w, labels: Int32Array.from(labels), classes, captions };
}

/** Images i (uint8) as a float tensor (k, C, H, W) in [-1, 1], no augmentation (evaluation). */
export function imagesTensor(d: ImageArray, indices: ArrayLike<number>): Tensor {
  const size = d.c * d.h * d.w;
  const out = new Uint8Array(indices.length * size);
  for (let i = 0; i < indices.length; i++)
    out.set(d.pixels.subarray(indices[i]! * size, (indices[i]! + 1) * size), i * size);
  const t = fromBytes(out, 'uint8', [indices.length, d.c, d.h, d.w]);
  const f = t.to('float32');
  t.dispose();
  return f.div_(127.5).sub_(1);
}

/** The first `count` images (or those chosen by `indices`) as a new data set. */
export function subset(d: ImageArray, indices: ArrayLike<number>): ImageArray {
  const size = d.c * d.h * d.w;
  const px = sharedBytes(indices.length * size);
  for (let i = 0; i < indices.length; i++)
    px.set(d.pixels.subarray(indices[i]! * size, (indices[i]! + 1) * size), i * size);
  const pick = <T>(a: ArrayLike<T> | undefined): T[] | undefined => (a ? Array.from(indices, (i) => a[i]!) : undefined);
  return {
    ...d,
    pixels: px,
    n: indices.length,
    labels: Int32Array.from(indices, (i) => d.labels[i]!),
    captions: pick(d.captions),
    sources: pick(d.sources),
  };
}
