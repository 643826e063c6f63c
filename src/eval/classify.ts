// Running a classifier over a data set or a batch of images, in fixed-size chunks so results do not depend on how
// the caller batches (the network has no batch statistics).
import { Tensor, cat, noGrad, tidy } from '../engine/index.ts';
import type { Classifier } from '../models/classifier.ts';

/** Applies `fn` to fixed-size chunks of the rows of x and concatenates the results (batch-independent networks give
 * the same answer for any chunk size). */
export function chunked(x: Tensor, size: number, fn: (part: Tensor) => Tensor): Tensor {
  return tidy(() => {
    const parts: Tensor[] = [];
    for (let i = 0; i < x.shape[0]!; i += size) parts.push(fn(x.slice(0, i, i + size)));
    return cat(parts);
  });
}

/** Penultimate features (N, D) and predicted classes (N) of images (N, C, H, W) in [-1, 1]. */
export function classify(net: Classifier, images: Tensor, chunk = 256): { features: Tensor; predictions: Tensor } {
  return noGrad(() =>
    tidy(() => {
      const features = chunked(images, chunk, (x) => net.embed(x));
      return { features, predictions: net.head.forward(features).argmax(1) };
    }),
  );
}

/** Share of predictions equal to the labels. */
export const accuracy = (predictions: Tensor, labels: Tensor): number =>
  tidy(() => (predictions.eq(labels).sum().item() as number) / labels.shape[0]!);
