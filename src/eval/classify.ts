// Running a classifier over a data set or a batch of images, in fixed-size chunks so results do not depend on how
// the caller batches (the network has no batch statistics).
import { Tensor, cat, noGrad, tidy } from '../engine/index.ts';
import type { Classifier } from '../models/classifier.ts';

/** Penultimate features (N, D) and predicted classes (N) of images (N, C, H, W) in [-1, 1]. */
export function classify(net: Classifier, images: Tensor, chunk = 256): { features: Tensor; predictions: Tensor } {
  return noGrad(() =>
    tidy(() => {
      const feats: Tensor[] = [];
      for (let i = 0; i < images.shape[0]!; i += chunk) feats.push(net.embed(images.slice(0, i, i + chunk)));
      const features = cat(feats);
      return { features, predictions: net.head.forward(features).argmax(1) };
    }),
  );
}

/** Share of predictions equal to the labels. */
export const accuracy = (predictions: Tensor, labels: Tensor): number =>
  tidy(() => (predictions.eq(labels).sum().item() as number) / labels.shape[0]!);
