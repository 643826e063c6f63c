// reptok encode: images -> one token each, saved as a tokens file (what `reptok decode` reads).
import { saveTokens } from '../../pipeline/tokens-file.ts';
import { MODEL_OPTIONS, existingFile, loadPipeline, outputFile, report } from '../model-options.ts';
import { UsageError, type CommandSpec, type Parsed } from '../args.ts';

export const spec: CommandSpec = {
  name: 'encode',
  summary: 'Encode images into one token each and save the tokens (N, D) with their source paths.',
  details: "Images are read at the tokenizer's size and channels (a square model takes each image's centre square).",
  positionals: [{ name: 'images', help: 'image files (PNG, JPEG, WebP, ...)', variadic: true }],
  options: {
    out: { type: 'string', short: 'o', default: 'tokens.safetensors', help: 'the tokens file to write', arg: 'FILE' },
    ...MODEL_OPTIONS,
  },
  examples: [
    'reptok encode photos/*.png --model runs/fmnist -o tokens.safetensors',
    'reptok encode a.png b.png --tokenizer runs/fmnist-tok/tokenizer.safetensors -o ab.safetensors --json',
  ],
};

export async function run({ positionals, options }: Parsed): Promise<void> {
  if (positionals.length === 0) throw new UsageError('no images given');
  outputFile(options.out, 'the tokens', ['.safetensors']);
  for (const p of positionals) existingFile(p, 'an image to encode');
  const rt = loadPipeline(options);
  const images = await rt.readImages(positionals);
  const tokens = rt.encode(images);
  saveTokens(options.out, { tokens, sources: positionals, tokenizer: rt.models.tokenizer.source });
  const [N, D] = tokens.shape as [number, number];
  report(
    options,
    { tokens: options.out, count: N, tokenDim: D, sources: positionals, precision: rt.precision },
    `wrote ${N} token(s) of width ${D} to ${options.out}`,
  );
  for (const t of [images, tokens]) t.dispose();
  rt.dispose();
}
