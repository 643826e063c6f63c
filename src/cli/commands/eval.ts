// reptok eval: the evaluation report of a tokenizer (and its class-conditional generator) on a data set's held-out
// split, judged by a reference classifier: report.json and index.html with the image grids.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { loadClassifierFile } from '../../models/classifier.ts';
import { loadEncoderFile } from '../../models/dinov2-weights.ts';
import { loadSplits } from '../../train/datasets.ts';
import {
  DEFAULT_PROTOCOL,
  DEFAULT_T2I_PROTOCOL,
  classifierFeatures,
  evaluateTextToImage,
  encoderFeatures,
  evaluate,
  type EvalProtocol,
} from '../../eval/evaluate.ts';
import { writeEvalReport } from '../../eval/report-page.ts';
import { shippedDir } from '../../pipeline/shipped.ts';
import {
  MODEL_OPTIONS,
  existingFile,
  loadPipeline,
  namesNoModel,
  note,
  outputFolder,
  report,
} from '../model-options.ts';
import { guidanceOptions } from './sample.ts';
import { UsageError, type CommandSpec, type Parsed } from '../args.ts';

const P = DEFAULT_PROTOCOL;
const T = DEFAULT_T2I_PROTOCOL;

export const spec: CommandSpec = {
  name: 'eval',
  summary:
    "Measure a tokenizer and its class-conditional generator on a data set's test split: PSNR, SSIM, rFD and " +
    'classifier agreement of reconstructions; class accuracy, FD, precision/recall and flow loss of samples; ' +
    'interpolation smoothness; caption retrieval of text-to-image samples.',
  details:
    'Without model options it evaluates the shipped Fashion-MNIST models (weights/fashion-mnist) with the ' +
    'protocol below. Classes and features come from a reference classifier (`reptok train classifier`; by default ' +
    "the model folder's classifier.safetensors); --encoder measures " +
    "distances in an encoder's [cls] space instead (an SSL encoder, or a DINOv2 for FD-DINOv2). Every number is " +
    'reported with its protocol (feature space, counts, split, sampling settings, seed). See docs/evaluation.md.',
  options: {
    classifier: {
      type: 'string',
      help: "the reference classifier file (default: the model folder's classifier.safetensors)",
      arg: 'FILE',
    },
    encoder: { type: 'string', help: "measure distances in this encoder's [cls] space", arg: 'FILE' },
    data: {
      type: 'string',
      help: "data set (default: the tokenizer's): fashion-mnist, emoji, folder:<path>",
      arg: 'NAME',
    },
    'data-dir': {
      type: 'string',
      default: '',
      help: "folder of the Fashion-MNIST files (default: Debian's)",
      arg: 'DIR',
    },
    images: { type: 'number', default: P.reconstructionImages, help: 'held-out images reconstructed', arg: 'N' },
    'samples-per-class': { type: 'number', default: P.samplesPerClass, help: 'generated samples per class', arg: 'N' },
    reference: {
      type: 'number',
      default: P.referenceImages,
      help: 'reference images for FD and precision/recall',
      arg: 'N',
    },
    steps: { type: 'number', default: P.steps, help: 'Euler steps of the generator and the decoder', arg: 'N' },
    cfg: { type: 'number', default: P.guidance, help: 'guidance scale of the samples', arg: 'S' },
    interval: { type: 'string', default: P.interval.join(','), help: 'times a,b where guidance applies', arg: 'A,B' },
    paths: { type: 'number', default: P.interpolationPaths, help: 'interpolation paths', arg: 'N' },
    frames: { type: 'number', default: P.interpolationFrames, help: 'frames per interpolation path', arg: 'N' },
    prompts: {
      type: 'number',
      default: T.prompts,
      help: 'training captions used as prompts (text-to-image)',
      arg: 'N',
    },
    prompt: { type: 'list', default: [], help: 'a held-out prompt shown as a grid row (repeatable)', arg: 'TEXT' },
    seed: { type: 'number', default: P.seed, help: 'seed of every draw', arg: 'N' },
    'batch-size': {
      type: 'number',
      default: P.batchSize,
      help: 'images per forward pass (results do not change)',
      arg: 'N',
    },
    out: {
      type: 'string',
      short: 'o',
      default: join('out', 'eval'),
      help: 'folder for report.json and index.html',
      arg: 'DIR',
    },
    ...MODEL_OPTIONS,
  },
  examples: [
    'reptok eval                        # the shipped Fashion-MNIST models on the test split',
    'reptok eval --model weights/emoji --json',
    'reptok eval --model runs/fmnist --classifier runs/fmnist-classifier/classifier.safetensors',
    'reptok eval --tokenizer tok.safetensors --generator gen.safetensors --classifier clf.safetensors --json',
    'reptok eval --model runs/fmnist --classifier clf.safetensors --encoder encoder.safetensors -o out/eval-ssl',
  ],
};

const positiveInt = (o: Parsed['options'], flag: string): number => {
  const v = o[flag];
  if (!(Number.isInteger(v) && v > 0)) throw new UsageError(`--${flag} must be a positive integer, got ${v}`);
  return v;
};

/** The reference classifier: --classifier, else the one beside the models (the shipped folder when none is named). */
function classifierFile(o: Parsed['options']): string {
  if (o.classifier) return existingFile(o.classifier, '--classifier');
  const dir = namesNoModel(o) ? shippedDir('fashion-mnist') : o.model;
  const beside = dir && statSync(dir, { throwIfNoEntry: false })?.isDirectory() && join(dir, 'classifier.safetensors');
  if (beside && existsSync(beside)) return beside;
  throw new UsageError(
    'which reference classifier? pass --classifier FILE (from `reptok train classifier`)' +
      (beside ? ` — ${beside} is not there` : ''),
  );
}

export async function run({ options: given }: Parsed): Promise<void> {
  const options: Parsed['options'] = { ...given, classifier: classifierFile(given) };
  const g = guidanceOptions({ ...options, n: 1 });
  const frames = positiveInt(options, 'frames');
  if (frames < 2) throw new UsageError(`--frames must be at least 2, got ${frames}`);
  if (!Number.isInteger(options.seed)) throw new UsageError(`--seed must be an integer, got ${options.seed}`);
  const protocol: EvalProtocol = {
    ...P,
    reconstructionImages: positiveInt(options, 'images'),
    samplesPerClass: positiveInt(options, 'samples-per-class'),
    referenceImages: positiveInt(options, 'reference'),
    steps: positiveInt(options, 'steps'),
    guidance: g.guidance,
    interval: g.interval,
    interpolationPaths: positiveInt(options, 'paths'),
    interpolationFrames: frames,
    seed: options.seed,
    batchSize: positiveInt(options, 'batch-size'),
  };
  outputFolder(options.out, 'the report and its pictures'); // checked now: the evaluation takes minutes
  const log = note(options);
  const clf = loadClassifierFile(options.classifier);
  const rt = loadPipeline(options);
  const enc = options.encoder ? loadEncoderFile(existingFile(options.encoder, '--encoder')) : null;
  try {
    for (const m of [clf.model, enc?.model]) m?.to({ device: rt.device }); // the judges run beside the models
    if (clf.data.classes && rt.generator && clf.data.classes.join() !== rt.classes.join())
      throw new Error(
        `the classifier's classes (${clf.data.classes.join(', ')}) are not the generator's (${rt.classes.join(', ')})`,
      );
    const dataName = options.data ?? rt.models.tokenizer.data.name;
    if (!dataName) throw new UsageError('the tokenizer file does not name its data set: pass --data NAME');
    const [H] = rt.imageSize;
    const splits = await loadSplits(dataName, { dataDir: options['data-dir'], size: H, log });
    if (splits.test.c !== rt.channels)
      throw new Error(`${dataName} has ${splits.test.c} channel(s), the tokenizer makes ${rt.channels}`);
    const features = enc
      ? encoderFeatures(enc.model, `encoder ${options.encoder}`, enc.model.config.imgSize)
      : classifierFeatures(clf.model, `reference classifier ${options.classifier}`);
    const { report: r, pictures } = evaluate(
      rt,
      clf.model,
      features,
      { name: dataName, reference: splits.test, referenceSplit: 'test', train: splits.train },
      protocol,
      log,
    );
    if (rt.t2i) {
      log(`text-to-image: ${options.prompts} training captions as prompts`);
      const t0 = performance.now();
      const t2i = evaluateTextToImage(
        rt,
        enc ? features : { name: "the tokenizer's token space", embed: (x) => rt.encode(x) },
        splits.train,
        protocol,
        {
          ...T,
          prompts: positiveInt(options, 'prompts'),
          heldOutPrompts: options.prompt.length ? options.prompt : T.heldOutPrompts,
        },
      );
      r.textToImage = t2i.report;
      pictures.prompts = t2i.pictures;
      r.seconds.textToImage = Math.round((performance.now() - t0) / 10) / 100;
    }
    r.models.classifier = options.classifier;
    if (options.encoder) r.models.encoder = options.encoder;
    try {
      const paths = await writeEvalReport(options.out, r, pictures, {
        perRow: {
          reconstructions: Math.min(10, protocol.reconstructionImages),
          samples: Math.min(10, protocol.samplesPerClass),
          interpolations: protocol.interpolationFrames,
          prompts: 8,
        },
      });
      report(options, { ...r, files: paths }, summary(r, paths.html));
    } finally {
      for (const t of Object.values(pictures)) t?.dispose();
    }
  } finally {
    clf.model.dispose();
    enc?.model.dispose();
    rt.dispose();
  }
}

function summary(r: ReturnType<typeof evaluate>['report'], html: string): string {
  const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
  const lines = [
    `reptok eval on ${r.protocol.data} (${r.protocol.referenceSplit}), features: ${r.protocol.featureSpace}, ` +
      `precision: ${r.protocol.precision}`,
  ];
  const rec = r.reconstruction;
  if (rec)
    lines.push(
      `  reconstruction (${rec.images} images): PSNR ${rec.psnr.mean.toFixed(2)} dB, ` +
        `SSIM ${rec.ssim.mean.toFixed(3)}, rFD ${rec.rfd.toFixed(3)}, ` +
        `classifier agreement ${pct(rec.classifierAgreement)} ` +
        `(on the originals: ${pct(rec.classifierAccuracyOriginals)})`,
    );
  const gen = r.generation;
  if (gen)
    lines.push(
      `  generation (${gen.samples} samples): class accuracy ${pct(gen.accuracy)}, FD ${gen.fd.toFixed(3)} ` +
        `(train vs reference ${gen.fdTrainVsReference.toFixed(3)}), precision ${gen.precision.toFixed(3)}, ` +
        `recall ${gen.recall.toFixed(3)}, flow loss ${gen.flowValidationLoss.mean.toFixed(4)}`,
    );
  const it = r.interpolation;
  if (it)
    lines.push(
      `  interpolation (${it.paths} paths × ${it.frames} frames): step/endpoint distance ` +
        `mean ${it.meanStepRatio.toFixed(3)}, max ${it.maxStepRatio.toFixed(3)} (even: ${it.even.toFixed(3)})`,
    );
  const t = r.textToImage;
  if (t)
    lines.push(
      `  text-to-image (${t.prompts} prompts × ${t.samplesPerPrompt}): a real image with the prompt as caption ` +
        `among the ${t.k} nearest in ${pct(t.captionRetrieval)} of samples`,
    );
  lines.push(`report: ${html}`);
  return lines.join('\n');
}
