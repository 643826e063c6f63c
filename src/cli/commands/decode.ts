// reptok decode: a tokens file -> one image per token.
import { basename, extname, join, resolve } from 'node:path';

import { writeImage } from '../../io/image.ts';
import { loadTokens } from '../../pipeline/tokens-file.ts';
import {
  DECODE_OPTIONS,
  MODEL_OPTIONS,
  bar,
  decodeOptions,
  existingFile,
  loadPipeline,
  note,
  outputFolder,
  report,
} from '../model-options.ts';
import type { CommandSpec, Parsed } from '../args.ts';

export const spec: CommandSpec = {
  name: 'decode',
  summary: 'Decode a tokens file (from `reptok encode`) into one image per token.',
  details:
    'Images are written as <out>/<name>.png, named after the image each token came from (else its index).\n' +
    'Decoding solves the flow ODE from noise; --seed fixes the noise, --steps/--sampler trade time for accuracy.',
  positionals: [{ name: 'tokens', help: 'a tokens file (.safetensors)' }],
  options: {
    out: { type: 'string', short: 'o', default: 'decoded', help: 'folder for the images', arg: 'DIR' },
    ...DECODE_OPTIONS,
    ...MODEL_OPTIONS,
  },
  examples: [
    'reptok decode tokens.safetensors --model runs/fmnist -o decoded/',
    'reptok decode tokens.safetensors --model runs/fmnist --sampler heun --steps 25 --seed 3 -o decoded/',
  ],
};

/** Output names for N images: the sources' names when known and distinct, else indices. */
export function outputNames(n: number, sources: string[], suffix = ''): string[] {
  const stems = sources.map((s) => basename(s, extname(s)));
  const distinct = stems.length === n && new Set(stems).size === n;
  return Array.from({ length: n }, (_, i) => `${distinct ? stems[i] : String(i).padStart(4, '0')}${suffix}.png`);
}

export async function run({ positionals, options }: Parsed): Promise<void> {
  const d = decodeOptions(options);
  const { tokens, sources, tokenizer } = loadTokens(existingFile(positionals[0]!, 'the tokens to decode'));
  outputFolder(options.out, 'the images');
  const rt = loadPipeline(options);
  const progress = bar(options);
  const images = rt.decode(tokens, { ...d, onProgress: progress });
  progress.done();
  const using = rt.models.tokenizer.source; // said after decoding: tokens that do not fit fail with one line
  if (tokenizer && resolve(tokenizer) !== resolve(using))
    note(options)(`note: these tokens were made by ${tokenizer}; decoded them with ${using}`);
  const files = outputNames(tokens.shape[0]!, sources).map((n) => join(options.out, n));
  for (let i = 0; i < files.length; i++) await writeImage(files[i]!, images.select(0, i));
  report(options, { images: files, ...d, precision: rt.precision }, `wrote ${files.length} image(s) to ${options.out}`);
  for (const t of [tokens, images]) t.dispose();
  rt.dispose();
}
