// reptok generate: images from text prompts with a text-to-image model, decoded into a grid (one row per prompt).
import { WRITABLE_IMAGE_EXTENSIONS, checkImageSize, gridSize, imageGrid, writeImage } from '../../io/image.ts';
import {
  DECODE_OPTIONS,
  MODEL_OPTIONS,
  bar,
  decodeOptions,
  loadPipeline,
  outputFile,
  report,
} from '../model-options.ts';
import { UsageError, type CommandSpec, type Parsed } from '../args.ts';
import { GUIDANCE_OPTIONS, guidanceOptions } from './sample.ts';

export const spec: CommandSpec = {
  name: 'generate',
  summary: 'Generate images from text prompts with a text-to-image model: a grid, one row per prompt.',
  positionals: [{ name: 'prompts', help: 'one or more prompts (quote each)', variadic: true }],
  options: {
    out: { type: 'string', short: 'o', default: 'generated.png', help: 'the grid image', arg: 'FILE' },
    ...GUIDANCE_OPTIONS,
    ...DECODE_OPTIONS,
    ...MODEL_OPTIONS,
  },
  examples: [
    'reptok generate "red apple" "cat face" -o apples-and-cats.png   # the shipped emoji model',
    'reptok generate "red heart" "cat face" --model runs/emoji --n 6 -o hearts-and-cats.png',
    'reptok generate "pizza" --t2i runs/emoji-t2i/t2i.safetensors --tokenizer runs/emoji-tok/tokenizer.safetensors',
  ],
};

export async function run({ positionals, options }: Parsed): Promise<void> {
  if (positionals.length === 0) throw new UsageError('no prompt given');
  const d = decodeOptions(options);
  const g = guidanceOptions(options);
  outputFile(options.out, 'the grid', WRITABLE_IMAGE_EXTENSIONS);
  const rt = loadPipeline(options, 'emoji'); // no model named: the shipped emoji text-to-image model
  checkImageSize(options.out, ...gridSize(positionals.length * g.n, rt.imageSize, { nrow: g.n }));
  const progress = bar(options);
  const { images, tokens } = rt.generate(positionals, { ...d, ...g, onProgress: progress });
  progress.done();
  const grid = imageGrid(images, { nrow: g.n });
  await writeImage(options.out, grid);
  report(
    options,
    { output: options.out, prompts: positionals, ...g, ...d, precision: rt.precision },
    `wrote ${images.shape[0]} images to ${options.out} (rows: ${positionals.map((p) => JSON.stringify(p)).join(', ')})`,
  );
  for (const t of [images, tokens, grid]) t.dispose();
  rt.dispose();
}
