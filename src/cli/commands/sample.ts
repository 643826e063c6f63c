// reptok sample: class-conditional samples from the generator, decoded into a grid (one row per class).
import { WRITABLE_IMAGE_EXTENSIONS, checkImageSize, gridSize, imageGrid, writeImage } from '../../io/image.ts';
import {
  MODEL_OPTIONS,
  bar,
  decodeOptions,
  loadPipeline,
  outputFile,
  report,
  DECODE_OPTIONS,
} from '../model-options.ts';
import { checkGuidance } from '../../flow/guidance.ts';
import { UsageError, asUsage, type CommandSpec, type Parsed } from '../args.ts';

/** Options shared with `generate`: guidance and the grid file. */
export const GUIDANCE_OPTIONS = {
  n: { type: 'number', default: 8, help: 'samples per class (per prompt): one row of the grid', arg: 'N' },
  cfg: { type: 'number', default: 1.5, help: 'classifier-free guidance scale (1: no guidance)', arg: 'S' },
  interval: { type: 'string', default: '0.3,0.9', help: 'times a,b where guidance applies', arg: 'A,B' },
} as const;

/** --n, --cfg and --interval, checked. */
export function guidanceOptions(o: Parsed['options']): { n: number; guidance: number; interval: [number, number] } {
  if (!(Number.isInteger(o.n) && o.n > 0)) throw new UsageError(`--n must be a positive integer, got ${o.n}`);
  const interval = String(o.interval).split(',').map(Number);
  asUsage(() => checkGuidance(o.cfg, interval, { scale: '--cfg', interval: '--interval' }));
  return { n: o.n, guidance: o.cfg, interval: interval as [number, number] };
}

export const spec: CommandSpec = {
  name: 'sample',
  summary: 'Generate images of chosen classes with the class-conditional generator: a grid, one row per class.',
  details: 'Classes by name or index (see `reptok info <generator>`); --all takes every class.',
  options: {
    out: { type: 'string', short: 'o', default: 'samples.png', help: 'the grid image', arg: 'FILE' },
    class: { type: 'list', default: [], help: 'a class name or index (repeatable; a,b,c also works)', arg: 'C' },
    all: { type: 'boolean', help: 'one row for every class' },
    ...GUIDANCE_OPTIONS,
    ...DECODE_OPTIONS,
    ...MODEL_OPTIONS,
  },
  examples: [
    'reptok sample --model runs/fmnist --class sneaker --class bag --n 8 -o samples.png',
    'reptok sample --model runs/fmnist --all --n 4 --cfg 2 --interval 0.2,0.9 --steps 25 --seed 7 -o grid.png',
  ],
};

export async function run({ options }: Parsed): Promise<void> {
  const d = decodeOptions(options);
  const g = guidanceOptions(options);
  const asked = (options.class as string[]).flatMap((c) => c.split(',')).filter((c) => c !== '');
  if (asked.length && options.all) throw new UsageError('choose --class or --all, not both');
  if (!asked.length && !options.all) throw new UsageError('which classes? pass --class C (repeatable) or --all');
  outputFile(options.out, 'the grid', WRITABLE_IMAGE_EXTENSIONS);
  const rt = loadPipeline(options);
  const count = (options.all ? rt.classes.length : asked.length) * g.n;
  checkImageSize(options.out, ...gridSize(count, rt.imageSize, { nrow: g.n })); // now, not after sampling
  const progress = bar(options);
  const { images, tokens, labels } = rt.sample({
    ...d,
    ...g,
    classes: options.all ? undefined : asked,
    onProgress: progress,
  });
  progress.done();
  const grid = imageGrid(images, { nrow: g.n });
  await writeImage(options.out, grid);
  const rows = [...new Set(labels)].map((i) => rt.classes[i]!);
  report(
    options,
    { output: options.out, classes: rows, labels, ...g, ...d, precision: rt.precision },
    `wrote ${labels.length} samples to ${options.out} (rows: ${rows.join(', ')})`,
  );
  for (const t of [images, tokens, grid]) t.dispose();
  rt.dispose();
}
