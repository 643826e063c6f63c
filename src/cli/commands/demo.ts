// reptok demo: the whole pipeline end to end on Fashion-MNIST with short schedules (a few minutes on 2 cores): a small
// self-supervised encoder, a one-token tokenizer on it, a class-conditional generator of tokens; then a PNG of test
// images, their one-token reconstructions and generated samples, and the metrics. Honest about being short.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { Generator, cat, noGrad, randn, tensor, tidy } from '../../engine/index.ts';
import { imageGrid, writeImage } from '../../io/image.ts';
import { loadTokenizer } from '../../models/tokenizer.ts';
import { smallVit } from '../../models/dinov2.ts';
import { MLPMixer1D, classField } from '../../models/generator.ts';
import { generate } from '../../flow/token-flow.ts';
import { loadSafetensors, SafetensorsFile } from '../../io/safetensors.ts';
import { loadFashionMnist, FASHION_MNIST_CLASSES } from '../../data/fashion-mnist.ts';
import { imagesTensor } from '../../data/image-array.ts';
import { psnr } from '../../eval/metrics.ts';
import { mergeConfig, type Json } from '../../train/config.ts';
import { PRESETS, train, type StageName } from '../../train/presets.ts';
import type { CommandSpec, Parsed } from '../args.ts';

export const spec: CommandSpec = {
  name: 'demo',
  summary: 'Run the whole RepTok pipeline on Fashion-MNIST with short schedules and write a picture of the results.',
  details:
    'Stages: a small self-supervised ViT (DINO) -> the one-token tokenizer on it -> a class-conditional token\n' +
    'generator. Writes <out>/demo.png (rows: test images, their one-token reconstructions, then generated samples,\n' +
    'one row per class) and <out>/metrics.json. Schedules are short so it finishes in minutes; the summary says\n' +
    'how to train properly.',
  options: {
    out: { type: 'string', short: 'o', default: 'out/demo', help: 'output folder (overwritten)', arg: 'DIR' },
    scale: {
      type: 'number',
      default: 1,
      help: "multiplies every stage's number of steps (e.g. 0.2 for a smoke test, 5 for better images)",
      arg: 'X',
    },
  },
};

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

export async function run({ options }: Parsed): Promise<void> {
  const out: string = options.out;
  const scale: number = options.scale;
  mkdirSync(out, { recursive: true });
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
      log: (m) => (m.startsWith('config') || m.startsWith('runtime') ? undefined : log(m)),
    });
    times[s.stage] = (performance.now() - t0) / 1000;
    results[s.stage] = { steps, ...(r.final ?? {}) };
  }

  // the picture: test images, their reconstructions, generated samples per class
  const tok = loadTokenizer(join(out, 'tokenizer', 'tokenizer.safetensors'));
  const genPath = join(out, 'generator', 'generator.safetensors');
  const meta = SafetensorsFile.open(genPath);
  const gen = noGrad(() => new MLPMixer1D(JSON.parse(meta.metadata.config!)));
  meta.close();
  gen.loadStateDict(loadSafetensors(genPath).tensors, { context: genPath });
  gen.eval();
  const test = loadFashionMnist('test');
  const picture = noGrad(() =>
    tidy(() => {
      const g = new Generator({ seed: 0 });
      const originals = imagesTensor(
        test,
        Int32Array.from({ length: 10 }, (_, i) => i * 997),
      );
      const recon = tok.decode(tok.encode(originals), { steps: 25, generator: g }).images;
      const y = tensor(
        Int32Array.from({ length: 80 }, (_, i) => i % 10),
        { dtype: 'int64' },
      );
      const { z } = generate(classField(gen, y), randn([80, 1, tok.tokenDim], { generator: g }), {
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
