// How good an image encoder's features are, as DINO measures it: k-NN and linear-probe accuracy of its [cls]
// features on a labelled data set, next to raw pixels and an untrained network of the same shape (the baselines a
// self-supervised encoder must beat). Everything runs on the encoder's device: the images and labels (from the data
// set in memory) go there.
import { Tensor, cat, noGrad, tensor, tidy, type Device } from '../engine/index.ts';
import { moduleDevice } from '../nn/index.ts';
import { DinoVisionTransformer } from '../models/dinov2.ts';
import { encoderInput } from '../models/preprocess.ts';
import { imagesTensor, type ImageArray } from '../data/image-array.ts';
import { knnAccuracy } from './knn.ts';
import { linearProbeAccuracy } from './linear-probe.ts';

export interface EncoderEvalOptions {
  knnK: number;
  probeEpochs: number;
  /** Images used at most from each split. */
  maxTrain: number;
  maxTest: number;
}

/** Class labels of the first n images (int64) on `device`. */
const labelsOf = (d: ImageArray, n: number, device: Device): Tensor =>
  tensor(d.labels.subarray(0, n), { dtype: 'int64', device });

/**
 * [cls] features (count, D) of a data set's first images from a ViT (raw pixels for null), in batches, on `device`
 * (default: the ViT's).
 */
export function extractFeatures(
  vit: DinoVisionTransformer | null,
  d: ImageArray,
  count: number,
  batch = 256,
  device: Device = vit ? moduleDevice(vit) : 'cpu',
): Tensor {
  return noGrad(() =>
    tidy(() => {
      const parts: Tensor[] = [];
      for (let i = 0; i < count; i += batch) {
        parts.push(
          tidy(() => {
            const imgs = imagesTensor(
              d,
              Int32Array.from({ length: Math.min(batch, count - i) }, (_, k) => i + k),
            ).to(device);
            return vit ? vit.forward(encoderInput(imgs)) : imgs.flatten(1);
          }),
        );
      }
      return cat(parts);
    }),
  );
}

/** k-NN accuracy of a ViT's features (the periodic check of a training run: cheaper than the probe). */
export function knnOfEncoder(
  vit: DinoVisionTransformer,
  train: ImageArray,
  test: ImageArray,
  k: number,
  n: [number, number],
): number {
  return noGrad(() =>
    tidy(() => {
      const [nTrain, nTest] = [Math.min(train.n, n[0]), Math.min(test.n, n[1])];
      const device = moduleDevice(vit);
      return knnAccuracy(
        extractFeatures(vit, train, nTrain),
        labelsOf(train, nTrain, device),
        extractFeatures(vit, test, nTest),
        labelsOf(test, nTest, device),
        { k, classes: train.classes.length },
      );
    }),
  );
}

/** k-NN and linear-probe accuracy of an encoder, raw pixels and an untrained network of the same shape. */
export function evaluateEncoder(
  vit: DinoVisionTransformer,
  train: ImageArray,
  test: ImageArray,
  o: EncoderEvalOptions,
  log: (m: string) => void,
): Record<string, number> {
  const nTrain = Math.min(train.n, o.maxTrain);
  const nTest = Math.min(test.n, o.maxTest);
  const device = moduleDevice(vit);
  const [ytr, yte] = [labelsOf(train, nTrain, device), labelsOf(test, nTest, device)];
  const classes = train.classes.length;
  // initialised on the CPU (like every model), then moved
  const untrained = noGrad(() => new DinoVisionTransformer(vit.config).initWeights().eval().to({ device }));
  const out: Record<string, number> = {};
  for (const [name, net] of [
    ['ssl', vit],
    ['untrained', untrained],
    ['pixels', null],
  ] as const) {
    const [ftr, fte] = [
      extractFeatures(net, train, nTrain, 256, device),
      extractFeatures(net, test, nTest, 256, device),
    ];
    out[`knn_${name}`] = knnAccuracy(ftr, ytr, fte, yte, { k: o.knnK, classes });
    out[`probe_${name}`] = linearProbeAccuracy(ftr, ytr, fte, yte, { classes, epochs: o.probeEpochs });
    log(
      `${name}: k-NN (k=${o.knnK}) ${(100 * out[`knn_${name}`]!).toFixed(2)}%, ` +
        `linear probe ${(100 * out[`probe_${name}`]!).toFixed(2)}% (${nTrain} train / ${nTest} test images)`,
    );
    ftr.dispose();
    fte.dispose();
  }
  untrained.dispose();
  ytr.dispose();
  yte.dispose();
  return out;
}
