// How good a token generator is: its flow loss over K equal time segments on held-out tokens (fixed noise), the
// images it makes (generated tokens decoded by the tokenizer), and the class consistency of its guided samples.
// Everything runs on the models' device; the token sets (in memory, on the CPU) are moved there.
import { Generator, Tensor, randn, tensor, tidy, type Device } from '../engine/index.ts';
import { moduleDevice } from '../nn/index.ts';
import type { GuidableField } from '../flow/guidance.ts';
import { generate, validationLoss } from '../flow/token-flow.ts';
import { classField, type MLPMixer1D } from '../models/generator.ts';
import type { RepTokTokenizer } from '../models/tokenizer.ts';
import { knnAccuracy } from './knn.ts';

/** How samples are drawn: ODE steps, guidance scale and its time interval. */
export interface SamplingOptions {
  steps: number;
  cfgScale: number;
  interval: [number, number];
}

/**
 * Class labels 0…classes−1, each repeated `perClass` times (int64, on `device`): the conditioning of per-class
 * sample sets.
 */
export const classLabels = (classes: number, perClass: number, device: Device): Tensor =>
  tensor(
    Int32Array.from({ length: classes * perClass }, (_, i) => Math.floor(i / perClass)),
    { dtype: 'int64', device },
  );

/**
 * The flow loss of velocity `v` on the first `count` tokens (N, D) over `segments` equal t-segments, with noise
 * from `seed`, on `device` (default: the tokens'); `v` gets the rows' indices to pick their conditions.
 */
export function segmentedFlowLoss(
  v: (x: Tensor, t: Tensor, idx: Tensor) => Tensor,
  tokens: Tensor,
  o: { count: number; segments: number; seed: number; device?: Device },
): Record<string, number> {
  return tidy(() => {
    const device = o.device ?? tokens.device;
    const n = Math.min(o.count, tokens.shape[0]!);
    const idx = tensor(
      Int32Array.from({ length: n }, (_, i) => i),
      { dtype: 'int64', device },
    );
    const x1 = tokens.slice(0, 0, n).to(device).unsqueeze(1);
    const x0 = randn(x1.shape, { generator: new Generator({ seed: o.seed, device }), device });
    const { loss, segments } = validationLoss((x, t) => v(x, t, idx), x1, { x0, segments: o.segments });
    const out: Record<string, number> = { val_loss: loss.item() };
    (segments.toArray() as number[]).forEach((s, k) => (out[`val_t${k}`] = s));
    return out;
  });
}

/**
 * `count` guided samples of a field decoded by the tokenizer: images (count, C, H, W) on the tokenizer's device, all
 * noise from `seed`.
 */
export function sampleImages(
  tok: RepTokTokenizer,
  field: GuidableField,
  count: number,
  o: SamplingOptions,
  seed: number,
): Tensor {
  return tidy(() => {
    const device = moduleDevice(tok);
    const g = new Generator({ seed, device });
    const { z } = generate(field, randn([count, 1, tok.tokenDim], { generator: g, device }), {
      steps: o.steps,
      guidance: { scale: o.cfgScale, interval: o.interval },
    });
    return tok.decode(z.squeeze(1), { steps: o.steps, generator: g }).images;
  });
}

/**
 * Class consistency of guided samples: `perClass` tokens per class, each classified by k-NN (k = 20) among the
 * training tokens; and, for scale, the same k-NN accuracy of the real held-out tokens.
 */
export function classConsistency(
  model: MLPMixer1D,
  train: { tokens: Tensor; labels: Int32Array },
  test: { tokens: Tensor; labels: Int32Array },
  perClass: number,
  o: SamplingOptions,
  seed: number,
): { sample_class_acc: number; real_token_knn_acc: number; train_tokens: number } {
  return tidy(() => {
    const classes = model.config.numClasses;
    const device = moduleDevice(model);
    const [N, D] = train.tokens.shape as [number, number];
    const [trainTokens, testTokens] = [train.tokens.to(device), test.tokens.to(device)];
    const trainLabels = tensor(train.labels, { dtype: 'int64', device });
    const y = classLabels(classes, perClass, device);
    const x0 = randn([classes * perClass, 1, D], { generator: new Generator({ seed, device }), device });
    const { z } = generate(classField(model, y), x0, {
      steps: o.steps,
      guidance: { scale: o.cfgScale, interval: o.interval },
    });
    const testLabels = tensor(test.labels, { dtype: 'int64', device });
    return {
      sample_class_acc: knnAccuracy(trainTokens, trainLabels, z.squeeze(1), y, { classes }),
      real_token_knn_acc: knnAccuracy(trainTokens, trainLabels, testTokens, testLabels, { classes }),
      train_tokens: N,
    };
  });
}
