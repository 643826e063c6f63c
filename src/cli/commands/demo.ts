// reptok demo: what one token per image can do, as a page. By default it runs the shipped models (no training)
// in weights/ on their sample images and writes out/demo/index.html (src/demo/ builds it); --train instead runs
// the whole pipeline end to end on Fashion-MNIST with short schedules (a few minutes on 2 cores): a small
// self-supervised encoder, a one-token tokenizer on it, a class-conditional generator of tokens; then a PNG of test
// images, their one-token reconstructions and generated samples, and the metrics. Honest about being short.
import { writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

import { Generator, cat, noGrad, randn, setNumThreads, tensor, tidy } from '../../engine/index.ts';
import { imageGrid, writeImage } from '../../io/image.ts';
import { loadTokenizer } from '../../models/tokenizer.ts';
import { smallVit } from '../../models/dinov2.ts';
import { classField, loadGenerator } from '../../models/generator.ts';
import { generate } from '../../flow/token-flow.ts';
import { loadFashionMnist, FASHION_MNIST_CLASSES } from '../../data/fashion-mnist.ts';
import { imagesTensor } from '../../data/image-array.ts';
import { psnr } from '../../eval/metrics.ts';
import { mergeConfig, type Json } from '../../train/config.ts';
import { PRESETS, train, type StageName } from '../../train/presets.ts';
import { buildDemo } from '../../demo/build.ts';
import { renderDemoPage } from '../../demo/html.ts';
import { MODEL_OPTIONS, modelSets, outputFolder } from '../model-options.ts';
import { UsageError, commandLine, type CommandSpec, type Parsed } from '../args.ts';
import { deviceFor } from '../device-option.ts';

const { json: _json, ...MODELS } = MODEL_OPTIONS;

export const spec: CommandSpec = {
  name: 'demo',
  summary: 'Show what the shipped models do on one page (out/demo/index.html); --train: train short ones first.',
  details:
    'Runs the models in --model (default weights/: one folder per model set, e.g. weights/fashion-mnist) on their\n' +
    "sample images (the folder's samples/, else the first test images of the tokenizer's data set) and writes\n" +
    '<out>/index.html: one-token reconstructions beside the originals (PSNR), interpolation strips and an\n' +
    'animation,' +
    'class-conditional samples at several guidance scales, text-to-image samples for a few prompts (--prompt, else\n' +
    "the folder's prompts.txt, else the sample images' captions), and the time each part took.\n" +
    '\n' +
    'With --train: the whole pipeline on Fashion-MNIST with short schedules instead (a small self-supervised ViT ->\n' +
    'the one-token tokenizer on it -> a class-conditional token generator). Writes <out>/demo.png (rows: test\n' +
    'images, their one-token reconstructions, then generated samples, one row per class) and <out>/metrics.json.\n' +
    'Schedules are short so it finishes in minutes; the summary says how to train properly.',
  options: {
    train: { type: 'boolean', help: 'train short models first instead of running shipped ones' },
    out: { type: 'string', short: 'o', default: 'out/demo', help: 'output folder (overwritten)', arg: 'DIR' },
    steps: { type: 'number', default: 25, help: 'ODE steps of every decode and generation', arg: 'N' },
    images: { type: 'number', default: 8, help: 'sample images to reconstruct (pairs of them interpolate)', arg: 'N' },
    frames: { type: 'number', default: 10, help: 'frames of an interpolation', arg: 'N' },
    cfg: { type: 'string', default: '1,2,4', help: 'guidance scales of the samples', arg: 'A,B,...' },
    n: { type: 'number', default: 2, help: 'samples per class (per prompt) at each guidance scale', arg: 'N' },
    prompt: { type: 'list', default: [], help: 'a prompt for a text-to-image model (repeatable)', arg: 'TEXT' },
    ...MODELS,
    scale: {
      type: 'number',
      default: 1,
      help: "with --train: multiplies every stage's number of steps (0.2 for a smoke test, 5 for better images)",
      arg: 'X',
    },
  },
  examples: [
    'reptok demo                        # the shipped models in weights/ -> out/demo/index.html',
    'reptok demo --model runs/fmnist --steps 50',
    'reptok demo --train --scale 0.2    # train tiny models first (no shipped models needed)',
  ],
};

export async function run(p: Parsed): Promise<void> {
  if (p.options.train) return runTraining(p);
  return runShipped(p);
}

/** The page of the shipped models. */
async function runShipped({ options: o }: Parsed): Promise<void> {
  const log = (m: string) => process.stderr.write(`${m}\n`);
  const int = (name: string, min: number): number => {
    if (!(Number.isInteger(o[name]) && o[name] >= min))
      throw new UsageError(`--${name} must be an integer ≥ ${min}, got ${o[name]}`);
    return o[name];
  };
  const guidanceScales = String(o.cfg).split(',').map(Number);
  if (!guidanceScales.every((g) => Number.isFinite(g) && g >= 0))
    throw new UsageError(`--cfg must be guidance scales ≥ 0 separated by commas, got '${o.cfg}'`);
  if (o.threads > 0) setNumThreads(o.threads);
  outputFolder(o.out, 'the page and its pictures');
  const sets = modelSets(o, log);
  const t0 = performance.now();
  const reports = await buildDemo(sets, {
    out: o.out,
    steps: int('steps', 1),
    images: int('images', 0),
    frames: int('frames', 2),
    guidanceScales,
    perClass: int('n', 1),
    prompts: (o.prompt as string[]).filter((x) => x.trim() !== ''),
    log,
  });
  const seconds = (performance.now() - t0) / 1000;
  const given = (['model', 'tokenizer', 'generator', 't2i'] as const).filter((k) => o[k]);
  const serveCommand = ['npx reptok serve', ...given.map((k) => `--${k} ${o[k]}`)].join(' ');
  const index = join(o.out, 'index.html');
  writeFileSync(index, renderDemoPage(reports, { totalSeconds: seconds, serveCommand }));
  const rel = relative(process.cwd(), resolve(index));
  const where = rel.startsWith('..') ? resolve(index) : rel;
  const parts = reports.flatMap((r) =>
    r.parts.map((p) => `${r.name} ${p.title.toLowerCase()} ${p.seconds.toFixed(1)} s`),
  );
  console.log(
    [
      `Wrote ${where} in ${seconds.toFixed(1)} s (${parts.join(', ')}).`,
      `Open it in a browser: file://${resolve(index)}`,
      `Try the models yourself in the web demo: ${serveCommand}  (then open http://127.0.0.1:8080/)`,
    ].join('\n'),
  );
}

const STAGES: { stage: StageName; preset: string; steps: number; set: (dir: string) => Record<string, Json> }[] = [
  {
    stage: 'ssl',
    preset: 'fmnist-ssl',
    steps: 250,
    set: () => ({
      batchSize: 32,
      lr: 5e-4,
      warmupSteps: 25,
      localCrops: 2,
      encoder: smallVit(28, { patchSize: 7, embedDim: 64, depth: 3, numHeads: 2 }) as unknown as Json,
      head: { hidden: 128, bottleneck: 32, outDim: 256 },
      eval: { knnK: 20, probeEpochs: 3, maxTrain: 5000, maxTest: 1000 },
    }),
  },
  {
    stage: 'tokenizer',
    preset: 'fmnist-tokenizer',
    steps: 1000,
    set: (dir) => ({
      batchSize: 32,
      lr: 1e-3,
      warmupSteps: 40,
      emaDecay: 0.99,
      encoderWeights: join(dir, 'ssl', 'encoder.safetensors'),
      tokenizer: { decoder: { width: 128, depth: 2, dHead: 32 }, mapping: { width: 64, dFF: 192 } },
      val: { images: 10, steps: 10, segments: 4 },
    }),
  },
  {
    stage: 'generator',
    preset: 'fmnist-generator',
    steps: 600,
    set: (dir) => ({
      batchSize: 128,
      lr: 1e-3,
      warmupSteps: 50,
      emaDecay: 0.99,
      tokenizerFile: join(dir, 'tokenizer', 'tokenizer.safetensors'),
      cacheDir: join(dir, 'cache'),
      generator: { dim: 128, depth: 3 },
      val: { steps: 10, samplesPerClass: 8 },
    }),
  },
];

/** The short training run and its picture. */
async function runTraining({ options, argv }: Parsed): Promise<void> {
  const out: string = options.out;
  const scale: number = options.scale;
  const device = deviceFor(options.device ?? 'cpu', undefined, 'demo');
  outputFolder(out, 'the runs and the page');
  const log = (m: string) => process.stderr.write(`${m}\n`);
  const times: Record<string, number> = {};
  const results: Record<string, Record<string, unknown>> = {};
  for (const s of STAGES) {
    const steps = Math.max(2, Math.round(s.steps * scale));
    const config = mergeConfig(
      PRESETS[s.preset]!(),
      {
        ...s.set(out),
        steps,
        logEvery: Math.max(1, Math.round(steps / 10)),
        valEvery: steps,
        sampleEvery: steps,
        checkpointEvery: steps,
      } as Record<string, Json>,
      `demo ${s.stage}`,
    );
    log(`\n== ${s.stage}: ${steps} steps (preset ${s.preset}, shortened) ==`);
    const t0 = performance.now();
    const r = await train(s.stage, config, {
      out: join(out, s.stage),
      force: true,
      device,
      command: `${commandLine('demo', argv)} (stage ${s.stage}: preset ${s.preset}, shortened)`,
      log: (m) => (m.startsWith('config') || m.startsWith('runtime') ? undefined : log(m)),
    });
    times[s.stage] = (performance.now() - t0) / 1000;
    results[s.stage] = { steps, ...(r.final ?? {}) };
  }

  // the picture: test images, their reconstructions, generated samples per class
  const tok = loadTokenizer(join(out, 'tokenizer', 'tokenizer.safetensors')).to({ device });
  const gen = loadGenerator(join(out, 'generator', 'generator.safetensors')).to({ device });
  const test = loadFashionMnist('test');
  const picture = noGrad(() =>
    tidy(() => {
      const g = new Generator({ seed: 0, device });
      const originals = imagesTensor(
        test,
        Int32Array.from({ length: 10 }, (_, i) => i * 997),
      ).to({ device });
      const recon = tok.decode(tok.encode(originals), { steps: 25, generator: g }).images;
      const y = tensor(
        Int32Array.from({ length: 80 }, (_, i) => i % 10),
        { dtype: 'int64', device },
      );
      const { z } = generate(classField(gen, y), randn([80, 1, tok.tokenDim], { generator: g, device }), {
        steps: 25,
        guidance: { scale: 1.5, interval: [0.3, 0.9] },
      });
      const samples = tok.decode(z.squeeze(1), { steps: 25, generator: g }).images;
      return { grid: imageGrid(cat([originals, recon, samples]), { nrow: 10 }), psnr: psnr(recon, originals) };
    }),
  );
  const png = join(out, 'demo.png');
  await writeImage(png, picture.grid);
  const metrics = { seconds: times, ...results, demo_psnr_10_images: picture.psnr, classes: FASHION_MNIST_CLASSES };
  writeFileSync(join(out, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
  const total = Object.values(times).reduce((a, b) => a + b, 0);
  console.log(
    [
      '',
      `Wrote ${png}: row 1 = test images, row 2 = their one-token reconstructions, rows 3-10 = generated samples`,
      `(columns = classes ${FASHION_MNIST_CLASSES.join(', ')}), and ${join(out, 'metrics.json')}.`,
      '',
      `This was a SHORT run (${total.toFixed(0)} s in all: ${Object.entries(times)
        .map(([k, v]) => `${k} ${v.toFixed(0)} s`)
        .join(', ')}) with small models,`,
      `so reconstructions are rough (PSNR ${picture.psnr.toFixed(1)} dB) and samples blurry.`,
      'To train properly (hours on 2 cores):',
      '  reptok train ssl --preset fmnist-ssl --out runs/fmnist-ssl',
      '  reptok train tokenizer --preset fmnist-tokenizer --out runs/fmnist-tok --set ' +
        'encoderWeights=runs/fmnist-ssl/encoder.safetensors',
      '  reptok train generator --preset fmnist-generator --out runs/fmnist-gen --set ' +
        'tokenizerFile=runs/fmnist-tok/tokenizer.safetensors',
    ].join('\n'),
  );
}
