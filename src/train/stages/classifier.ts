// Stage `classifier`: the reference classifier that `reptok eval` measures with (src/models/classifier.ts),
// trained with cross-entropy on a data set's real training split with light augmentation (shifted crops, flips).
// Validation: accuracy on held-out images; at the end, accuracy on the whole test split and the exported
// `classifier.safetensors` (EMA weights).
import { join } from 'node:path';

import { Tensor, F, tensor, tidy, type Device } from '../../engine/index.ts';
import { CLASSIFIER_PRESETS, Classifier, saveClassifier, type ClassifierConfig } from '../../models/classifier.ts';
import { DataLoader, type Batch } from '../../data/loader.ts';
import { imagesTensor, type ImageArray } from '../../data/image-array.ts';
import { accuracy, classify } from '../../eval/classify.ts';
import { COMMON_DEFAULTS, type CommonConfig } from '../config.ts';
import { loadSplits } from '../datasets.ts';
import type { Stage, StageContext } from '../trainer.ts';

export interface ClassifierStageConfig extends CommonConfig {
  stage: 'classifier';
  classifier: Omit<ClassifierConfig, 'imageChannels' | 'numClasses'>;
  /** Training image side; shifted crops pad by `pad` pixels. */
  imageSize: number;
  pad: number;
  hflip: number;
  labelSmoothing: number;
  val: { images: number };
}

export function classifierPreset(data: 'fashion-mnist' | 'emoji'): ClassifierStageConfig {
  const { imageChannels: _c, numClasses: _n, ...net } = CLASSIFIER_PRESETS['cnn-s'];
  return {
    ...COMMON_DEFAULTS,
    stage: 'classifier',
    data,
    steps: 3000,
    batchSize: 128,
    lr: 2e-3,
    warmupSteps: 100,
    weightDecay: 0.05,
    emaDecay: 0.999,
    classifier: net,
    imageSize: data === 'fashion-mnist' ? 28 : 32,
    pad: 2,
    hflip: 0.5,
    labelSmoothing: 0.1,
    val: { images: 2000 },
  };
}

/** Images [0, n) of a split and their labels, on `device`. */
const firstImages = (d: ImageArray, n: number, device: Device): { images: Tensor; labels: Tensor } => {
  const idx = Int32Array.from({ length: Math.min(n, d.n) }, (_, i) => i);
  return {
    images: tidy(() => imagesTensor(d, idx).to(device)),
    labels: tensor(d.labels.subarray(0, idx.length), { dtype: 'int64', device }),
  };
};

export async function classifierStage(ctx: StageContext<ClassifierStageConfig>): Promise<Stage<any, Batch>> {
  const c = ctx.config;
  const { train, test } = await loadSplits(c.data, { dataDir: c.dataDir, size: c.imageSize, log: ctx.log });
  if (train.classes.length < 2 || train.labels.some((l) => l < 0))
    throw new Error(`data set '${c.data}' has no class labels for every image: a classifier needs them`);
  const net = new Classifier({ ...c.classifier, imageChannels: train.c, numClasses: train.classes.length });
  ctx.log(`classifier: ${(net.numParameters() / 1e6).toFixed(2)}M parameters, ${train.classes.length} classes`);
  const val = firstImages(test, c.val.images, ctx.device);
  const evaluate = (x: { images: Tensor; labels: Tensor }): number =>
    ctx.evaluate(net, () => {
      const { features, predictions } = classify(net, x.images);
      features.dispose();
      const acc = accuracy(predictions, x.labels);
      predictions.dispose();
      return acc;
    });

  return {
    model: net,
    batches: (position) =>
      new DataLoader(train, {
        batchSize: c.batchSize,
        views: [{ size: c.imageSize, crop: 'random', pad: c.pad, hflip: c.hflip }],
        seed: c.seed,
        prefetch: c.prefetch,
        position,
        shard: ctx.shard,
      }),
    step: (batch) => {
      const logits = net.forward(batch.views[0]!);
      const loss = F.crossEntropy(logits, batch.labels, { labelSmoothing: c.labelSmoothing });
      return { loss, metrics: { acc: accuracy(logits.argmax(1), batch.labels) } };
    },
    validate: async () => ({ val_acc: evaluate(val) }),
    finish: async () => {
      const path = join(ctx.out, 'classifier.safetensors');
      saveClassifier(path, net, {
        weights: ctx.ema?.shadow ?? net.stateDict(),
        data: ctx.dataInfo(train),
        training: ctx.trainingInfo,
      });
      const all = firstImages(test, test.n, ctx.device);
      try {
        const testAcc = evaluate(all);
        ctx.log(`exported ${path} (EMA weights); test accuracy ${(100 * testAcc).toFixed(2)}% on ${test.n} images`);
        return { classifier: path, test_accuracy: testAcc, test_images: test.n };
      } finally {
        all.images.dispose();
        all.labels.dispose();
      }
    },
    dispose: () => {
      val.images.dispose();
      val.labels.dispose();
      net.dispose();
    },
  };
}
