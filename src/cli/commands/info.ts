// reptok info: what the engine runs on (libtorch, threads, BLAS, oneDNN, malloc tuning, CUDA) — the first thing to
// paste in a bug report; and with a file, what the file is: architecture, parameters, dtypes, what it was trained
// on and how, and which commands can use it.
import { existsSync } from 'node:fs';

import { runtimeInfo } from '../../engine/index.ts';
import { precisionReason, resolvePrecision } from '../../train/autocast.ts';
import { SafetensorsFile } from '../../io/safetensors.ts';
import { looksLikeZip } from '../../io/zip.ts';
import { describeModel, modelKindOf, type ModelKind } from '../../models/model-file.ts';
import { TOKENS_FORMAT } from '../../pipeline/tokens-file.ts';
import { REPTOK_VERSION } from '../../version.ts';
import type { CommandSpec, Parsed } from '../args.ts';

export const spec: CommandSpec = {
  name: 'info',
  summary:
    'Without a file: print the runtime (libtorch version, threads, BLAS libraries in use, thread-wait settings, ' +
    'whether linear layers run on oneDNN and malloc is tuned, CUDA devices). With a file: what the file holds and ' +
    'can do.',
  positionals: [{ name: 'file', help: 'a model or tokens file (.safetensors)', optional: true }],
  options: { json: { type: 'boolean', help: 'print one JSON object' } },
  examples: [
    'reptok info',
    'reptok info runs/fmnist-tok/tokenizer.safetensors',
    'reptok info runs/fmnist-gen/generator.safetensors --json',
  ],
};

const USES: Record<ModelKind, string[]> = {
  encoder: [
    'the encoder of a tokenizer: reptok train tokenizer --set encoderWeights=FILE',
    'image features ([cls]) from code: loadEncoder(FILE)',
  ],
  tokenizer: ['reptok encode', 'reptok decode', 'reptok reconstruct', 'reptok interpolate'],
  generator: ['reptok sample (with its tokenizer)'],
  t2i: ['reptok generate (with its tokenizer)'],
  classifier: ['reptok eval --classifier FILE (the reference classifier of the metrics)'],
};

/** A one-line summary of a model's architecture. */
function architecture(kind: ModelKind, c: any): string {
  const vit = (e: any) => `ViT ${e.embedDim} wide, ${e.depth} blocks of ${e.numHeads} heads, patch ${e.patchSize}`;
  switch (kind) {
    case 'encoder':
      return `${vit(c)}, ${c.numRegisterTokens} registers, ${c.imgSize}×${c.imgSize} input`;
    case 'tokenizer':
      return (
        `encoder ${vit(c.encoder)} at ${c.encoderInputSize} px -> one token of width ${c.encoder.embedDim}; ` +
        `decoder ${c.decoder.width} wide, ${c.decoder.depth} blocks, in ${c.space} space -> ` +
        `${c.imageChannels}×${c.imageSize.join('×')} images`
      );
    case 'generator':
      return (
        `MLP-Mixer ${c.dim} wide, ${c.depth} blocks, over tokens of width ${c.tokenDim}; ` +
        (c.numClasses ? `${c.numClasses} classes` : 'unconditional')
      );
    case 't2i':
      return (
        `text-to-token mixer ${c.t2i.dim} wide, ${c.t2i.depth} blocks with cross-attention (${c.t2i.heads} heads), ` +
        `over tokens of width ${c.t2i.tokenDim}; text encoder ${c.text.width} wide, ${c.text.depth} blocks, ` +
        `${c.text.maxLength} words`
      );
    case 'classifier':
      return `CNN ${c.widths.join('/')} channels, ${c.imageChannels}-channel images -> ${c.numClasses} classes`;
  }
}

export function describeFile(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new Error(`${path}: no such file`);
  if (looksLikeZip(path))
    throw new Error(
      `${path}: a PyTorch checkpoint, not a reptok model file; the RepTok authors' released .ckpt works as it is ` +
        `with --model ${path}, or convert it: reptok convert ${path} -o DIR`,
    );
  const file = SafetensorsFile.open(path);
  file.close();
  const entries = [...file.entries.values()];
  const parameters = entries.reduce((n, e) => n + e.shape.reduce((a, b) => a * b, 1), 0);
  const dtypes = [...new Set(entries.map((e) => e.dtype))];
  const base = { file: path, tensors: entries.length, parameters, dtypes };
  const kind = modelKindOf(file.metadata);
  if (kind) {
    const d = describeModel<any>(path, file.metadata, kind);
    return {
      ...base,
      kind,
      architecture: architecture(kind, d.config),
      config: d.config,
      data: d.data,
      training: d.training,
      reptok: d.reptok,
      ...d.extra,
      uses: USES[kind],
    };
  }
  if (file.metadata.format === TOKENS_FORMAT) {
    const t = file.entries.get('tokens');
    return {
      ...base,
      kind: 'tokens',
      count: t?.shape[0],
      tokenDim: t?.shape[1],
      tokenizer: file.metadata.tokenizer,
      uses: ['reptok decode (with the tokenizer that made them)'],
    };
  }
  return {
    ...base,
    kind: 'weights',
    metadata: file.metadata,
    uses: ['not a reptok model file: weights for code (e.g. DINOv2 or SD-VAE weights for the tokenizer stage)'],
  };
}

const human = (info: Record<string, unknown>): string =>
  Object.entries(info)
    .filter(([k]) => k !== 'config')
    .map(
      ([k, v]) =>
        `${`${k}:`.padEnd(14)}${Array.isArray(v) ? v.join('; ') : typeof v === 'object' ? JSON.stringify(v) : v}`,
    )
    .join('\n');

export async function run({ positionals, options }: Parsed): Promise<void> {
  const info = positionals[0]
    ? describeFile(positionals[0])
    : {
        reptok: REPTOK_VERSION,
        node: process.version,
        ...runtimeInfo(),
        // what `reptok train` uses with the default --set precision=auto on this machine's CPU
        defaultPrecision: `${resolvePrecision('auto')} (${precisionReason()})`,
      };
  if (options.json || !positionals[0]) console.log(JSON.stringify(info, null, options.json ? undefined : 2));
  else console.log(human(info));
}
