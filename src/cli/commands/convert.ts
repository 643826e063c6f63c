// reptok convert: the RepTok authors' released checkpoint (a Lightning .ckpt) -> our self-describing model files,
// one per model it holds: tokenizer.safetensors (encoder, decoder, VAE) and generator.safetensors (the EMA
// generator the release samples with), each with its architecture, data and provenance in the metadata.
import { join } from 'node:path';

import { loadOfficialCheckpoint } from '../../models/official-checkpoint.ts';
import { saveTokenizer } from '../../models/tokenizer.ts';
import { saveGenerator } from '../../models/generator.ts';
import { CHECKPOINT_OPTIONS, checkpointOptions, existingFile, note, outputFolder, report } from '../model-options.ts';
import { UsageError, type CommandSpec, type Parsed } from '../args.ts';

export const spec: CommandSpec = {
  name: 'convert',
  summary:
    "Convert the RepTok authors' released checkpoint (reptok-xl-600k-ImageNet.ckpt) into reptok model files: " +
    'tokenizer.safetensors and generator.safetensors.',
  details:
    'The checkpoint is read as data (its pickled hyper-parameters are never executed). The folder then works with ' +
    '--model DIR in every command; `reptok info DIR/tokenizer.safetensors` shows what was converted.',
  positionals: [{ name: 'checkpoint', help: 'the released .ckpt file (PyTorch Lightning)' }],
  options: {
    out: { type: 'string', short: 'o', help: 'the folder to write the model files into', arg: 'DIR' },
    weights: {
      type: 'string',
      default: 'ema',
      help: "the generator's weights: 'ema' (what the release samples with) or 'online'",
      arg: 'W',
    },
    ...CHECKPOINT_OPTIONS,
    json: { type: 'boolean', help: 'print one JSON object describing the outputs (for scripts)' },
  },
  examples: [
    'reptok convert reptok-xl-600k-ImageNet.ckpt -o models/reptok-xl',
    'reptok convert reptok-xl-600k-ImageNet.ckpt -o models/reptok-xl --model-yaml RepTok/configs/model/reptok.yaml',
  ],
};

export async function run({ positionals, options }: Parsed): Promise<void> {
  if (!options.out) throw new UsageError('where to? pass -o DIR');
  if (options.weights !== 'ema' && options.weights !== 'online')
    throw new UsageError(`--weights must be 'ema' or 'online', got '${options.weights}'`);
  const path = existingFile(positionals[0]!, 'the checkpoint to convert');
  outputFolder(options.out, 'the model files');
  const ckpt = loadOfficialCheckpoint(path, { ...checkpointOptions(options), generatorWeights: options.weights });
  for (const n of ckpt.report.notes) note(options)(`${path}: ${n}`);
  const tokenizer = join(options.out, 'tokenizer.safetensors');
  const generator = join(options.out, 'generator.safetensors');
  const described = { data: ckpt.data, training: ckpt.training };
  saveTokenizer(tokenizer, ckpt.tokenizer, { ...described, extra: ckpt.extra });
  saveGenerator(generator, ckpt.generator, { ...described, extra: { ...ckpt.extra, tokenizerFile: tokenizer } });
  ckpt.tokenizer.dispose();
  ckpt.generator.dispose();
  report(
    options,
    {
      tokenizer,
      generator,
      generatorWeights: ckpt.generatorWeights,
      step: ckpt.globalStep,
      tokenScale: ckpt.tokenizer.config.tokenScale,
      ignored: ckpt.report.ignored,
      unknown: ckpt.report.unknown,
      notes: ckpt.report.notes,
    },
    [
      `wrote ${tokenizer}`,
      `wrote ${generator} (${ckpt.generatorWeights} weights, step ${ckpt.globalStep ?? 'unknown'})`,
      ...ckpt.report.ignored.map((i) => `ignored: ${i}`),
      ...ckpt.report.unknown.map((u) => `unknown, ignored: ${u}`),
    ].join('\n'),
  );
}
