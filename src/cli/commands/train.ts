// reptok train <stage>: trains a stage from a preset, a config file and --set overrides.
import { PRESETS, STAGES, presetsFor, resolveTrainConfig, train, type StageName } from '../../train/presets.ts';
import { UsageError, commandLine, type CommandSpec, type Parsed } from '../args.ts';

const stageLines = STAGES.map((s) => `  ${s.padEnd(10)} presets: ${presetsFor(s).join(', ')}`).join('\n');

export const spec: CommandSpec = {
  name: 'train',
  summary:
    'Train one stage of the pipeline: ssl (encoder), tokenizer (stage A), generator (stage B), t2i (text-to-image), ' +
    'classifier (the reference classifier of reptok eval).',
  details:
    `Stages:\n${stageLines}\n\n` +
    'The config is the preset, then --config FILE (JSON or YAML), then each --set key=value (dotted keys, JSON\n' +
    'values). It is printed, written to <out>/config.json and stored in every checkpoint. Checkpoints\n' +
    '(<out>/step-*.safetensors) are written atomically; --resume continues exactly where the last one left off;\n' +
    'Ctrl-C writes one and stops. Metrics go to <out>/metrics.jsonl, sample grids to <out>/samples/.\n' +
    'Stages chain through their outputs:\n' +
    '  ssl -> <out>/encoder.safetensors      (--set encoderWeights=... for the tokenizer)\n' +
    '  tokenizer -> <out>/tokenizer.safetensors (--set tokenizerFile=... for generator and t2i)',
  positionals: [{ name: 'stage', help: STAGES.join(' | ') }],
  options: {
    preset: { type: 'string', help: 'named configuration (see above)', arg: 'NAME' },
    out: {
      type: 'string',
      short: 'o',
      help: 'run folder (created; refused if it holds a run, unless --resume or --force)',
      arg: 'DIR',
    },
    config: { type: 'string', help: 'JSON or YAML file of config overrides', arg: 'FILE' },
    set: {
      type: 'list',
      default: [],
      help: 'override one key, e.g. --set lr=3e-4 --set tokenizer.decoder.depth=6 (repeatable)',
      arg: 'KEY=VALUE',
    },
    steps: { type: 'number', help: 'number of training steps (overrides the config)', arg: 'N' },
    resume: { type: 'boolean', help: 'continue the run in --out from its last checkpoint' },
    force: { type: 'boolean', help: 'start over in an --out that already holds a run' },
  },
  examples: [
    'reptok train ssl --preset fmnist-ssl --out runs/fmnist-ssl',
    'reptok train tokenizer --preset fmnist-tokenizer --out runs/fmnist-tok --set ' +
      'encoderWeights=runs/fmnist-ssl/encoder.safetensors',
    'reptok train generator --preset fmnist-generator --out runs/fmnist-gen --set ' +
      'tokenizerFile=runs/fmnist-tok/tokenizer.safetensors',
    'reptok train tokenizer --preset fmnist-tokenizer --out runs/fmnist-tok --resume',
  ],
};

export async function run({ positionals, options, argv }: Parsed): Promise<number | void> {
  const stage = positionals[0] as StageName;
  if (!STAGES.includes(stage)) throw new UsageError(`unknown stage '${stage}'; stages: ${STAGES.join(', ')}`, 'train');
  if (!options.preset)
    throw new UsageError(`--preset is required; presets for '${stage}': ${presetsFor(stage).join(', ')}`, 'train');
  if (!options.out) throw new UsageError('--out DIR is required', 'train');
  if (!(options.preset in PRESETS))
    throw new UsageError(
      `unknown preset '${options.preset}'; presets for '${stage}': ${presetsFor(stage).join(', ')}`,
      'train',
    );
  const config = resolveTrainConfig(stage, options.preset, { file: options.config, sets: options.set });
  const result = await train(stage, config, {
    out: options.out,
    resume: options.resume,
    force: options.force,
    steps: options.steps,
    command: commandLine('train', argv),
  });
  if (result.final) console.log(JSON.stringify({ stage, step: result.step, ...result.final }));
  if (result.interrupted) return 130;
}
