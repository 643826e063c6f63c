// `reptok eval`: the numbers this field judges a tokenizer and a generator by, under one stated protocol.
//
//   reconstruction  PSNR and SSIM per image ([0, 1] scale), rFD (Fréchet distance between the features of the
//                   originals and of their reconstructions), classifier agreement (the reference classifier gives a
//                   reconstruction its source image's label)
//   generation      per-class accuracy of class-conditional samples under the reference classifier, FD to the
//                   reference split (beside FD(train, reference) for scale), precision/recall (k-NN manifolds,
//                   Kynkäänniemi et al. 2019), the flow validation loss per t-segment on held-out tokens
//   interpolation   along slerp paths between held-out images, the feature distance between consecutive frames
//                   relative to the endpoints' distance (mean and max): 1/(frames − 1) for a perfectly even path
//
// Features come from the reference classifier (src/models/classifier.ts) or any encoder that maps images to
// vectors (an SSL encoder's or a DINOv2's [cls]). Every draw is seeded and every batch is a fixed-size chunk, so the
// report depends on neither the batch size nor the thread count. Everything runs on the pipeline's device (the
// classifier and the feature space must be there too): the data set's images and labels (in memory, on the CPU) are
// moved there, and what is read on the host (per-image numbers, pictures) is moved back to the CPU.
import { F, Tensor, cat, keep, noGrad, tensor, tidy, type Device } from '../engine/index.ts';
import { segmentedFlowLoss } from './generator.ts';
import type { Classifier } from '../models/classifier.ts';
import type { DinoVisionTransformer } from '../models/dinov2.ts';
import { betterResize, encoderInput } from '../models/preprocess.ts';
import type { RepTok } from '../pipeline/reptok.ts';
import type { Precision } from '../train/autocast.ts';
import { imagesTensor, type ImageArray } from '../data/image-array.ts';
import { frechetDistance } from './frechet.ts';
import { precisionRecall } from './precision-recall.ts';
import { psnrPerImage, ssimPerImage } from './image-quality.ts';
import { accuracy, chunked, classify } from './classify.ts';

export interface EvalProtocol {
  /** Held-out images reconstructed (the first N of the reference split). */
  reconstructionImages: number;
  /** Class-conditional samples per class. */
  samplesPerClass: number;
  /** Reference images for FD and precision/recall (the first N of the reference split) and training images for
   * the FD(train, reference) baseline. */
  referenceImages: number;
  /** ODE steps of the token generator and of the decoder (Euler). */
  steps: number;
  guidance: number;
  interval: [number, number];
  /** Interpolation paths (between held-out images 2i and 2i + 1) and frames per path, both ends included. */
  interpolationPaths: number;
  interpolationFrames: number;
  /** Neighbourhood size of precision/recall. */
  k: number;
  /** Segments of the flow validation loss. */
  segments: number;
  seed: number;
  /** Images per forward pass (does not change the results). */
  batchSize: number;
}

export const DEFAULT_PROTOCOL: EvalProtocol = {
  reconstructionImages: 1000,
  samplesPerClass: 100,
  referenceImages: 1000,
  steps: 25,
  guidance: 1.5,
  interval: [0.3, 0.9],
  interpolationPaths: 16,
  interpolationFrames: 8,
  k: 3,
  segments: 8,
  seed: 0,
  batchSize: 64,
};

/** Maps images (B, C, H, W) in [-1, 1] to feature vectors (B, D). */
export interface FeatureSpace {
  name: string;
  embed(images: Tensor): Tensor;
}

export const classifierFeatures = (net: Classifier, name = 'reference classifier'): FeatureSpace => ({
  name: `${name} (penultimate layer, ${net.featureDim} dims)`,
  embed: (images) => net.embed(images),
});

/** An encoder's [cls] output as the feature space (an SSL encoder, or a DINOv2 for FD-DINOv2), at `inputSize`. */
export const encoderFeatures = (vit: DinoVisionTransformer, name: string, inputSize: number): FeatureSpace => ({
  name: `${name} ([cls], ${vit.config.embedDim} dims, ${inputSize} px input)`,
  embed: (images) =>
    tidy(() => {
      const rgb = images.shape[1] === 1 ? images.expand(-1, 3, -1, -1) : images;
      return vit.forward(encoderInput(rgb.shape[2] === inputSize ? rgb : betterResize(rgb, inputSize)));
    }),
});

export interface EvalData {
  /** The data set's name, as the report states it. */
  name: string;
  /** The split the numbers are measured on (held-out images with labels) and the training split. */
  reference: ImageArray;
  referenceSplit: string;
  train: ImageArray;
}

type Stats = { mean: number; min: number; max: number };
export interface EvalReport {
  protocol: EvalProtocol & {
    data: string;
    referenceSplit: string;
    featureSpace: string;
    sampler: 'euler';
    /** The precision the models computed in (the pipeline's). */
    precision: Precision;
  };
  models: Record<string, string>;
  reconstruction?: {
    images: number;
    psnr: Stats;
    ssim: Stats;
    rfd: number;
    /** Share of reconstructions classified as their source image's true label. */
    classifierAgreement: number;
    /** Share of reconstructions classified as the classifier classifies their source image. */
    predictionAgreement: number;
    /** The classifier's accuracy on the source images themselves: the ceiling of classifierAgreement. */
    classifierAccuracyOriginals: number;
  };
  generation?: {
    samples: number;
    accuracy: number;
    perClassAccuracy: Record<string, number>;
    fd: number;
    fdTrainVsReference: number;
    precision: number;
    recall: number;
    flowValidationLoss: { mean: number; segments: number[] };
  };
  interpolation?: { paths: number; frames: number; meanStepRatio: number; maxStepRatio: number; even: number };
  textToImage?: TextToImageReport;
  seconds: Record<string, number>;
}

export interface TextToImageReport {
  /** Training captions used as prompts, and samples per prompt. */
  prompts: number;
  samplesPerPrompt: number;
  /** Share of samples whose k nearest real training images (in the feature space) include one with the prompt as
   * caption. */
  captionRetrieval: number;
  k: number;
  heldOutPrompts: string[];
}

/** Pictures for the HTML page: (rows of) images in [-1, 1] with a caption each. */
export interface EvalPictures {
  reconstructions?: Tensor; // originals and reconstructions interleaved by row
  samples?: Tensor; // one row per class
  interpolations?: Tensor; // one row per path
  prompts?: Tensor; // one row per held-out prompt
}

const stats = (xs: number[]): Stats => ({
  mean: xs.reduce((a, b) => a + b, 0) / xs.length,
  min: Math.min(...xs),
  max: Math.max(...xs),
});

const range = (n: number) => Int32Array.from({ length: n }, (_, i) => i);

/** The first `n` images of a data set (B, C, H, W) in [-1, 1] on `device`. */
function firstImages(d: ImageArray, n: number, device: Device): Tensor {
  const host = imagesTensor(d, range(n));
  const out = host.to({ device });
  host.dispose();
  return out;
}

/** The first `n` labels of a data set (int64) on `device`. */
const firstLabels = (d: ImageArray, n: number, device: Device): Tensor =>
  tensor(d.labels.subarray(0, n), { dtype: 'int64', device });

/** Values of a small tensor (per-image numbers) read on the host. */
const hostArray = (t: Tensor): any => tidy(() => t.to({ device: 'cpu' }).toArray());

/**
 * Evaluates the pipeline's tokenizer (always) and class-conditional generator (when loaded) with `classifier` as
 * the judge of classes and `features` as the space of distances, both on the pipeline's device. Returns the report
 * and the pictures, on the CPU (the caller disposes them).
 */
export function evaluate(
  rt: RepTok,
  classifier: Classifier,
  features: FeatureSpace,
  data: EvalData,
  protocol: EvalProtocol = DEFAULT_PROTOCOL,
  log: (msg: string) => void = () => {},
): { report: EvalReport; pictures: EvalPictures } {
  const p = protocol;
  const device = rt.device;
  const seconds: Record<string, number> = {};
  const timed = <T>(name: string, fn: () => T): T => {
    const t0 = performance.now();
    try {
      return fn();
    } finally {
      seconds[name] = Math.round((performance.now() - t0) / 10) / 100;
    }
  };
  const embed = (images: Tensor) => noGrad(() => chunked(images, p.batchSize, (x) => features.embed(x)));
  const decodeOpts = { steps: p.steps, sampler: 'euler' as const, batchSize: p.batchSize };
  const report: EvalReport = {
    protocol: {
      ...p,
      data: data.name,
      referenceSplit: data.referenceSplit,
      featureSpace: features.name,
      sampler: 'euler',
      precision: rt.precision,
    },
    models: Object.fromEntries(
      Object.entries(rt.models)
        .filter(([, m]) => m)
        .map(([k, m]) => [k, m!.source]),
    ),
    seconds,
  };
  const pictures: EvalPictures = {};
  const refCount = Math.min(p.referenceImages, data.reference.n);
  const reference = firstImages(data.reference, refCount, device);
  const referenceFeatures = embed(reference);

  try {
    // ---- reconstruction --------------------------------------------------------------------------------------
    report.reconstruction = timed('reconstruction', () =>
      tidy(() => {
        const n = Math.min(p.reconstructionImages, data.reference.n);
        log(`reconstruction: ${n} images, ${p.steps} decoder steps`);
        const originals = firstImages(data.reference, n, device);
        const recon = rt.reconstruct(originals, { ...decodeOpts, seed: p.seed });
        const [o01, r01] = [originals.add(1).div(2), recon.clamp(-1, 1).add(1).div(2)];
        const psnr = hostArray(psnrPerImage(r01, o01)) as number[];
        const ssim = hostArray(ssimPerImage(r01, o01)) as number[];
        const labels = firstLabels(data.reference, n, device);
        const { predictions } = classify(classifier, recon.clamp(-1, 1), p.batchSize);
        const onOriginals = classify(classifier, originals, p.batchSize).predictions;
        const shown = Math.min(n, 10);
        pictures.reconstructions = keep(cat([originals.slice(0, 0, shown), recon.slice(0, 0, shown)]).to('cpu'));
        return {
          images: n,
          psnr: stats(psnr),
          ssim: stats(ssim),
          rfd: frechetDistance(embed(originals), embed(recon.clamp(-1, 1))),
          classifierAgreement: accuracy(predictions, labels),
          predictionAgreement: accuracy(predictions, onOriginals),
          classifierAccuracyOriginals: accuracy(onOriginals, labels),
        };
      }),
    );

    // ---- generation ------------------------------------------------------------------------------------------
    const g = rt.generator;
    if (g && g.config.numClasses > 0) {
      report.generation = timed('generation', () =>
        tidy(() => {
          const classes = rt.classes;
          log(`generation: ${p.samplesPerClass} samples for each of ${classes.length} classes, guidance ${p.guidance}`);
          const parts: Tensor[] = [];
          const labels: number[] = [];
          // One call per class: its noise is drawn for all its samples at once from a per-class seed, and only the
          // decoding is chunked, so the samples do not depend on the batch size.
          for (let c = 0; c < classes.length; c++) {
            const { images, tokens } = rt.sample({
              classes: [c],
              n: p.samplesPerClass,
              guidance: p.guidance,
              interval: p.interval,
              steps: p.steps,
              sampler: 'euler',
              seed: p.seed + 1000 * c,
              batchSize: p.batchSize,
            });
            tokens.dispose();
            parts.push(images.clamp(-1, 1));
            images.dispose();
            labels.push(...Array<number>(p.samplesPerClass).fill(c));
          }
          const samples = cat(parts);
          const y = tensor(Int32Array.from(labels), { dtype: 'int64', device });
          const { predictions } = classify(classifier, samples, p.batchSize);
          const correct = predictions.eq(y);
          const perClass = Object.fromEntries(
            classes.map((name, c) => [
              name,
              (correct
                .slice(0, c * p.samplesPerClass, (c + 1) * p.samplesPerClass)
                .sum()
                .item() as number) / p.samplesPerClass,
            ]),
          );
          const sampleFeatures = embed(samples);
          const trainFeatures = embed(firstImages(data.train, Math.min(refCount, data.train.n), device));
          const pr = precisionRecall(referenceFeatures, sampleFeatures, { k: p.k });
          const shown = Math.min(p.samplesPerClass, 10);
          pictures.samples = keep(
            cat(classes.map((_, c) => samples.slice(0, c * p.samplesPerClass, c * p.samplesPerClass + shown))).to(
              'cpu',
            ),
          );
          return {
            samples: labels.length,
            accuracy: accuracy(predictions, y),
            perClassAccuracy: perClass,
            fd: frechetDistance(sampleFeatures, referenceFeatures),
            fdTrainVsReference: frechetDistance(trainFeatures, referenceFeatures),
            precision: pr.precision,
            recall: pr.recall,
            flowValidationLoss: flowValidation(rt, data, refCount, p),
          };
        }),
      );
    }

    // ---- interpolation ---------------------------------------------------------------------------------------
    const paths = Math.min(p.interpolationPaths, Math.floor(data.reference.n / 2));
    if (paths > 0)
      report.interpolation = timed('interpolation', () =>
        tidy(() => {
          log(`interpolation: ${paths} slerp paths of ${p.interpolationFrames} frames`);
          const ratios: number[] = [];
          const rows: Tensor[] = [];
          for (let i = 0; i < paths; i++) {
            const ends = imagesTensor(data.reference, [2 * i, 2 * i + 1]);
            const { images, tokens } = rt.interpolate(ends.select(0, 0), ends.select(0, 1), {
              frames: p.interpolationFrames,
              method: 'slerp',
              steps: p.steps,
              sampler: 'euler',
              seed: p.seed + i,
            });
            tokens.dispose();
            const f = embed(images.clamp(-1, 1)); // (frames, D)
            const steps = hostArray(
              f
                .slice(0, 1)
                .sub(f.slice(0, 0, -1))
                .norm(2, 1),
            ) as number[];
            const span = f.select(0, -1).sub(f.select(0, 0)).norm().item() as number;
            ratios.push(...steps.map((s) => s / Math.max(span, 1e-12)));
            if (rows.length < 4) rows.push(images.clamp(-1, 1));
            else images.dispose();
          }
          pictures.interpolations = keep(cat(rows).to('cpu'));
          return {
            paths,
            frames: p.interpolationFrames,
            meanStepRatio: stats(ratios).mean,
            maxStepRatio: stats(ratios).max,
            even: 1 / (p.interpolationFrames - 1),
          };
        }),
      );
    return { report, pictures };
  } catch (e) {
    for (const t of Object.values(pictures)) t?.dispose();
    throw e;
  } finally {
    reference.dispose();
    referenceFeatures.dispose();
  }
}

/** The generator's flow loss at the midpoints of K t-segments on held-out tokens, with seeded noise. */
function flowValidation(rt: RepTok, data: EvalData, n: number, p: EvalProtocol): { mean: number; segments: number[] } {
  return noGrad(() =>
    tidy(() => {
      const g = rt.generator!;
      const tokens = chunked(imagesTensor(data.reference, range(n)), p.batchSize, (x) => rt.encode(x)); // (n, D)
      const labels = firstLabels(data.reference, n, rt.device);
      const out = rt.withPrecision(() =>
        segmentedFlowLoss((x, t, idx) => g.forward(x, t, { y: labels.indexSelect(0, idx) }).float(), tokens, {
          count: n,
          segments: p.segments,
          seed: p.seed + 7,
        }),
      );
      return { mean: out.val_loss!, segments: Array.from({ length: p.segments }, (_, k) => out[`val_t${k}`]!) };
    }),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Text-to-image
// ---------------------------------------------------------------------------------------------------------------

export interface TextToImageProtocol {
  /** Training captions used as prompts (evenly spread over the training set). */
  prompts: number;
  samplesPerPrompt: number;
  /** Nearest real images searched for the prompt's caption. */
  k: number;
  /** Prompts made of seen words but not training captions, shown as a grid. */
  heldOutPrompts: string[];
}

export const DEFAULT_T2I_PROTOCOL: TextToImageProtocol = {
  prompts: 100,
  samplesPerPrompt: 4,
  k: 5,
  heldOutPrompts: ['red apple', 'cat face', 'blue heart', 'smiling sun', 'green book', 'flag: Japan'],
};

/**
 * Text-to-image faithfulness without a text-image model: generate from training captions, and count how often a
 * real image carrying the prompt as its caption is among the k nearest real training images of a sample (cosine
 * similarity in `features`, e.g. the tokenizer's own token space). Held-out prompts are returned as pictures.
 */
export function evaluateTextToImage(
  rt: RepTok,
  features: FeatureSpace,
  train: ImageArray,
  protocol: EvalProtocol,
  t2i: TextToImageProtocol = DEFAULT_T2I_PROTOCOL,
): { report: TextToImageReport; pictures: Tensor } {
  const captions = train.captions;
  if (!captions) throw new Error('text-to-image evaluation needs a data set with captions');
  const count = Math.min(t2i.prompts, train.n);
  const prompts = Array.from({ length: count }, (_, i) => captions[Math.floor((i * train.n) / count)]!);
  return noGrad(() =>
    tidy(() => {
      const real = F.normalize(
        chunked(firstImages(train, train.n, rt.device), protocol.batchSize, (x) => features.embed(x)),
        2,
        1,
      ); // (N, D)
      const opts = {
        guidance: protocol.guidance,
        interval: protocol.interval,
        steps: protocol.steps,
        sampler: 'euler' as const,
        batchSize: protocol.batchSize,
      };
      const { images, tokens } = rt.generate(prompts, { ...opts, n: t2i.samplesPerPrompt, seed: protocol.seed });
      tokens.dispose();
      const gen = F.normalize(
        chunked(images.clamp(-1, 1), protocol.batchSize, (x) => features.embed(x)),
        2,
        1,
      );
      const nearest = hostArray(gen.mm(real.transpose(0, 1)).topk(Math.min(t2i.k, train.n), 1).indices) as number[][];
      const hits = nearest.filter((row, i) =>
        row.some((j) => captions[j] === prompts[Math.floor(i / t2i.samplesPerPrompt)]),
      ).length;
      const held = rt.generate(t2i.heldOutPrompts, { ...opts, n: 8, seed: protocol.seed + 1 });
      return {
        report: {
          prompts: count,
          samplesPerPrompt: t2i.samplesPerPrompt,
          captionRetrieval: hits / nearest.length,
          k: t2i.k,
          heldOutPrompts: t2i.heldOutPrompts,
        },
        pictures: keep(held.images.clamp(-1, 1).to('cpu')),
      };
    }),
  );
}
