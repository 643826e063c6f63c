// reptok reconstruct: images -> token -> images, each written beside its original (and the PSNR).
import { join } from 'node:path';

import { stack, tidy } from '../../engine/index.ts';
import { imageGrid, writeImage } from '../../io/image.ts';
import { psnr } from '../../eval/metrics.ts';
import {
  DECODE_OPTIONS,
  MODEL_OPTIONS,
  bar,
  decodeOptions,
  existingFile,
  loadPipeline,
  outputFolder,
  report,
} from '../model-options.ts';
import { UsageError, type CommandSpec, type Parsed } from '../args.ts';
import { outputNames } from './decode.ts';

export const spec: CommandSpec = {
  name: 'reconstruct',
  summary: 'Encode images into one token each and decode them again: <out>/<name>.png shows original | reconstruction.',
  positionals: [{ name: 'images', help: 'image files', variadic: true }],
  options: {
    out: { type: 'string', short: 'o', default: 'reconstructions', help: 'folder for the pairs', arg: 'DIR' },
    ...DECODE_OPTIONS,
    ...MODEL_OPTIONS,
  },
  examples: [
    'reptok reconstruct shirt.png shoe.png --model runs/fmnist -o recon/',
    'reptok reconstruct photos/*.jpg --model runs/fmnist --sampler dopri5 --seed 1 -o recon/ --json',
  ],
};

export async function run({ positionals, options }: Parsed): Promise<void> {
  if (positionals.length === 0) throw new UsageError('no images given');
  const d = decodeOptions(options);
  for (const p of positionals) existingFile(p, 'an image to reconstruct');
  outputFolder(options.out, 'the pairs');
  const rt = loadPipeline(options);
  const images = await rt.readImages(positionals);
  const progress = bar(options);
  const recon = rt.reconstruct(images, { ...d, onProgress: progress });
  progress.done();
  const files = outputNames(positionals.length, positionals).map((n) => join(options.out, n));
  const scores: number[] = [];
  for (let i = 0; i < files.length; i++) {
    const pair = tidy(() => stack([images.select(0, i), recon.select(0, i).to({ device: 'cpu' })]));
    scores.push(tidy(() => psnr(pair.slice(0, 1, 2), pair.slice(0, 0, 1))));
    const grid = imageGrid(pair, { nrow: 2 });
    await writeImage(files[i]!, grid);
    for (const t of [pair, grid]) t.dispose();
  }
  const mean = scores.reduce((a, b) => a + b, 0) / scores.length;
  report(
    options,
    { images: files, psnr: scores, ...d, precision: rt.precision },
    `wrote ${files.length} pair(s) (original | reconstruction) to ${options.out}; ` +
      `PSNR ${mean.toFixed(2)} dB on average`,
  );
  for (const t of [images, recon]) t.dispose();
  rt.dispose();
}
