// reptok interpolate: the path between two images' tokens, decoded with one noise for every frame, as a strip or
// an animation.
import { extname } from 'node:path';

import { tidy } from '../../engine/index.ts';
import {
  ANIMATION_EXTENSIONS,
  WRITABLE_IMAGE_EXTENSIONS,
  checkFrameDelay,
  checkImageSize,
  gridSize,
  imageGrid,
  writeAnimation,
  writeImage,
} from '../../io/image.ts';
import {
  DECODE_OPTIONS,
  MODEL_OPTIONS,
  bar,
  decodeOptions,
  existingFile,
  loadPipeline,
  outputFile,
  report,
} from '../model-options.ts';
import { UsageError, asUsage, type CommandSpec, type Parsed } from '../args.ts';

export const spec: CommandSpec = {
  name: 'interpolate',
  summary: 'Decode the tokens on the path from one image to another: a strip (.png) or an animation (.gif, .webp).',
  details:
    'By default the tokens move along a norm-aware spherical path (--slerp: the direction along the great circle,\n' +
    'the norm linearly from one end to the other); --lerp moves in a straight line. Every frame is decoded from\n' +
    'the same noise, so the frames differ only by their tokens.',
  positionals: [
    { name: 'a', help: 'the first image' },
    { name: 'b', help: 'the last image' },
  ],
  options: {
    out: {
      type: 'string',
      short: 'o',
      default: 'interpolation.png',
      help: '.png/.jpg (a strip of frames) or .gif/.webp (an animation)',
      arg: 'FILE',
    },
    frames: { type: 'number', default: 8, help: 'frames including both ends', arg: 'N' },
    slerp: { type: 'boolean', help: 'norm-aware spherical interpolation (the default)' },
    lerp: { type: 'boolean', help: 'linear interpolation instead' },
    delay: { type: 'number', default: 120, help: 'milliseconds per frame of an animation', arg: 'MS' },
    ...DECODE_OPTIONS,
    ...MODEL_OPTIONS,
  },
  examples: [
    'reptok interpolate shirt.png dress.png --model runs/fmnist --frames 10 -o strip.png',
    'reptok interpolate a.png b.png --model runs/emoji --frames 24 --lerp -o morph.gif',
  ],
};

export async function run({ positionals, options }: Parsed): Promise<void> {
  const d = decodeOptions(options);
  if (options.slerp && options.lerp) throw new UsageError('choose one of --slerp and --lerp');
  if (!(Number.isInteger(options.frames) && options.frames >= 2))
    throw new UsageError(`--frames must be an integer ≥ 2, got ${options.frames}`);
  asUsage(() => checkFrameDelay(options.delay, '--delay'));
  const animated = ANIMATION_EXTENSIONS.includes(
    extname(outputFile(options.out, 'the frames', WRITABLE_IMAGE_EXTENSIONS)).toLowerCase(),
  );
  const [a, b] = positionals.map((p) => existingFile(p, 'an image'));
  const rt = loadPipeline(options);
  if (!animated) checkImageSize(options.out, ...gridSize(options.frames, rt.imageSize, { nrow: options.frames }));
  const images = await rt.readImages([a!, b!]);
  const progress = bar(options);
  const method = options.lerp ? 'lerp' : 'slerp';
  const { images: frames, tokens } = rt.interpolate(images.select(0, 0), images.select(0, 1), {
    ...d,
    frames: options.frames,
    method,
    onProgress: progress,
  });
  progress.done();
  if (animated) await writeAnimation(options.out, frames, { delayMs: options.delay });
  else {
    const strip = imageGrid(frames, { nrow: frames.shape[0]! });
    await writeImage(options.out, strip);
    strip.dispose();
  }
  const norms = tidy(() => tokens.norm(2, 1).to('cpu').toArray()) as number[];
  report(
    options,
    { output: options.out, frames: options.frames, method, animated, tokenNorms: norms, ...d, precision: rt.precision },
    `wrote ${options.frames} frames (${method}) to ${options.out}${animated ? ' (animation)' : ''}`,
  );
  for (const t of [images, frames, tokens]) t.dispose();
  rt.dispose();
}
