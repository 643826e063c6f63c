// reptok train <stage>: trains a stage from a preset, a config file and --set overrides.
import { PRESETS, STAGES, presetsFor, resolveTrainConfig, train, type StageName } from '../../train/presets.ts';
import { availableParallelism } from 'node:os';

import { UsageError, commandLine, type CommandSpec, type Parsed } from '../args.ts';
import { DataParallel, distributedEnv } from '../../train/distributed.ts';
import { launchWorkers } from '../../train/launch.ts';
import { deviceFor } from '../device-option.ts';
import { setNumThreads } from '../../engine/index.ts';

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
    '  tokenizer -> <out>/tokenizer.safetensors (--set tokenizerFile=... for generator and t2i)\n\n' +
    'Several processes (data parallel on c10d/gloo): --nproc-per-node N starts N workers that split every batch\n' +
    '(batchSize is the global batch); add --nnodes/--node-rank/--master-addr/--master-port on each machine. Under\n' +
    "an external launcher that sets torchrun's WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT, run plain\n" +
    '`reptok train`. Rank 0 writes the checkpoints; --resume works with any number of processes.',
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
    'nproc-per-node': { type: 'number', help: 'data-parallel worker processes on this machine', arg: 'N' },
    nnodes: { type: 'number', help: 'machines taking part (default 1)', arg: 'M' },
    'node-rank': { type: 'number', help: "this machine's index, 0..M-1 (default 0)", arg: 'R' },
    'master-addr': { type: 'string', help: "node 0's address (default 127.0.0.1 on one machine)", arg: 'ADDR' },
    'master-port': { type: 'number', help: 'rendezvous port on node 0 (default: a free one on one machine)', arg: 'P' },
    'dist-timeout': {
      type: 'number',
      help: 'seconds a collective may wait for the other workers (default 1800)',
      arg: 'S',
    },
    device: {
      type: 'string',
      help: 'cpu (default), cuda or cuda:N, any stage; with several processes cuda means cuda:LOCAL_RANK',
      arg: 'DEV',
    },
    'bucket-mb': { type: 'number', help: 'gradient all-reduce bucket size in MB (default 25)', arg: 'MB' },
  },
  examples: [
    'reptok train ssl --preset fmnist-ssl --out runs/fmnist-ssl',
    'reptok train tokenizer --preset fmnist-tokenizer --out runs/fmnist-tok --set ' +
      'encoderWeights=runs/fmnist-ssl/encoder.safetensors',
    'reptok train generator --preset fmnist-generator --out runs/fmnist-gen --set ' +
      'tokenizerFile=runs/fmnist-tok/tokenizer.safetensors',
    'reptok train tokenizer --preset fmnist-tokenizer --out runs/fmnist-tok --resume',
    'reptok train tokenizer --preset fmnist-tokenizer --out runs/fmnist-tok --nproc-per-node 2',
  ],
};

const LAUNCH_FLAGS = ['--nproc-per-node', '--nnodes', '--node-rank', '--master-addr', '--master-port'];

export async function run({ positionals, options, argv }: Parsed): Promise<number | void> {
  const stage = positionals[0] as StageName;
  if (!STAGES.includes(stage)) throw new UsageError(`unknown stage '${stage}'; stages: ${STAGES.join(', ')}`, 'train');
  if (!options.preset)
    throw new UsageError(`--preset is required; presets for '${stage}': ${presetsFor(stage).join(', ')}`, 'train');
  if (!options.out) throw new UsageError('--out DIR is required', 'train');
  if (!Object.hasOwn(PRESETS, options.preset))
    throw new UsageError(
      `unknown preset '${options.preset}'; presets for '${stage}': ${presetsFor(stage).join(', ')}`,
      'train',
    );
  const config = resolveTrainConfig(stage, options.preset, {
    file: options.config,
    sets: options.set,
    steps: options.steps,
  });
  const env = distributedEnv();
  const device = deviceFor(options.device ?? 'cpu', env?.localRank, 'train');
  if (options['nproc-per-node'] !== undefined && !env) {
    // the launcher: this process only supervises; the workers run this same command line without the launch flags
    const workerArgs: string[] = [];
    for (let i = 0; i < argv.length; i++) {
      const flag = LAUNCH_FLAGS.find((f) => argv[i] === f || argv[i]!.startsWith(`${f}=`));
      if (flag === undefined) workerArgs.push(argv[i]!);
      else if (argv[i] === flag) i++; // its value
    }
    return launchWorkers(process.argv[1]!, ['train', ...workerArgs], {
      nprocPerNode: options['nproc-per-node'],
      nnodes: options.nnodes ?? 1,
      nodeRank: options['node-rank'] ?? 0,
      masterAddr: options['master-addr'] ?? '',
      masterPort: options['master-port'] ?? 0,
    });
  }
  if (env && process.env.OMP_NUM_THREADS === undefined && config.threads === 0)
    setNumThreads(Math.max(1, Math.floor(availableParallelism() / env.localWorldSize)));
  const parallel = env
    ? new DataParallel(env, {
        timeoutMs: 1000 * (options['dist-timeout'] ?? 1800),
        bucketMb: options['bucket-mb'] ?? 25,
        device,
      })
    : undefined;
  try {
    const result = await train(stage, config, {
      out: options.out,
      resume: options.resume,
      force: options.force,
      command: commandLine('train', argv),
      parallel,
      device,
    });
    if (result.final) console.log(JSON.stringify({ stage, step: result.step, ...result.final }));
    if (result.interrupted) return 130;
  } finally {
    parallel?.destroy();
  }
}
