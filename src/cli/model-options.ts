// What every inference command shares: the options that say which models to load and how to run them, loading the
// pipeline from them, and printing results (text, or one JSON object with --json).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';

import { setNumThreads } from '../engine/index.ts';
import { SAMPLERS, type SamplerName } from '../flow/ode.ts';
import { WRITABLE_IMAGE_EXTENSIONS } from '../io/image.ts';
import { makeOutputDir } from '../io/out-dir.ts';
import { peekModelFile } from '../models/model-file.ts';
import type { OfficialCheckpointOptions } from '../models/official-checkpoint.ts';
import { RepTok, type RepTokSources } from '../pipeline/index.ts';
import type { ModelSet } from '../pipeline/model-set.ts';
import { SHIPPED_WEIGHTS, shippedDir, type ShippedFamily } from '../pipeline/shipped.ts';
import { PRECISIONS, isPrecisionSetting, type PrecisionSetting } from '../train/config.ts';
import { progressBar } from './progress-bar.ts';
import { deviceFor } from './device-option.ts';
import { UsageError, type OptionSpec, type Parsed } from './args.ts';

/** What a released RepTok checkpoint (.ckpt) does not store, for --model FILE.ckpt and `reptok convert`. */
export const CHECKPOINT_OPTIONS: Record<string, OptionSpec> = {
  'model-yaml': {
    type: 'string',
    help: "a released checkpoint's model YAML (RepTok's configs/model/reptok.yaml): optional, checked against it",
    arg: 'FILE',
  },
  'encoder-heads': {
    type: 'number',
    default: 0,
    help: "a released checkpoint's DINOv2 head count, not stored in it (0: 64-dimensional heads, as released)",
    arg: 'N',
  },
};

/** --model-yaml and --encoder-heads as loader options. */
export function checkpointOptions(o: Parsed['options']): OfficialCheckpointOptions {
  const heads = o['encoder-heads'];
  if (!(Number.isInteger(heads) && heads >= 0))
    throw new UsageError(`--encoder-heads must be a non-negative integer, got ${heads}`);
  return {
    ...(o['model-yaml'] ? { modelConfig: existingFile(o['model-yaml'], '--model-yaml') } : {}),
    ...(heads ? { encoder: { numHeads: heads } } : {}),
  };
}

/** The model, runtime and output options of every inference command. */
export const MODEL_OPTIONS: Record<string, OptionSpec> = {
  model: {
    type: 'string',
    short: 'm',
    help:
      'a folder holding tokenizer.safetensors (and generator.safetensors / t2i.safetensors), one model file, ' +
      'or the released RepTok .ckpt (default: the shipped models in weights/)',
    arg: 'PATH',
  },
  tokenizer: { type: 'string', help: 'the tokenizer file (overrides --model)', arg: 'FILE' },
  generator: { type: 'string', help: 'the class-conditional generator file (overrides --model)', arg: 'FILE' },
  t2i: { type: 'string', help: 'the text-to-image model file (overrides --model)', arg: 'FILE' },
  device: { type: 'string', default: 'cpu', help: "where the models run: 'cpu', 'cuda', 'cuda:1', ...", arg: 'DEV' },
  threads: { type: 'number', default: 0, help: 'CPU threads for libtorch (0: all cores)', arg: 'N' },
  precision: {
    type: 'string',
    default: 'fp32',
    help:
      'fp32 | bf16 | auto (bf16 where the CPU multiplies it natively): bf16 is faster on AVX512-BF16 and AMX CPUs, ' +
      'its images differ slightly from float32 ones',
    arg: 'P',
  },
  'pack-weights': {
    type: 'boolean',
    default: true,
    help:
      "run float32 layers on weights packed for oneDNN's kernels: faster, with a second copy of the weights in " +
      'memory (--no-pack-weights keeps one copy)',
  },
  json: { type: 'boolean', help: 'print one JSON object describing the outputs (for scripts)' },
  ...CHECKPOINT_OPTIONS,
};

/** Options of the commands that decode: the decoder's ODE. */
export const DECODE_OPTIONS: Record<string, OptionSpec> = {
  steps: { type: 'number', default: 50, help: 'ODE steps of the fixed-step samplers', arg: 'N' },
  sampler: { type: 'string', default: 'euler', help: 'euler | heun | dopri5 (adaptive)', arg: 'NAME' },
  seed: { type: 'number', default: 0, help: 'seed of the noise', arg: 'N' },
};

/** The decoder options, checked. */
export function decodeOptions(o: Parsed['options']): {
  steps: number;
  sampler: SamplerName;
  seed: number;
} {
  if (!SAMPLERS.includes(o.sampler))
    throw new UsageError(`--sampler must be one of ${SAMPLERS.join(', ')}, got '${o.sampler}'`);
  if (!(Number.isInteger(o.steps) && o.steps > 0))
    throw new UsageError(`--steps must be a positive integer, got ${o.steps}`);
  if (!Number.isInteger(o.seed)) throw new UsageError(`--seed must be an integer, got ${o.seed}`);
  return { steps: o.steps, sampler: o.sampler, seed: o.seed };
}

/** A file that must exist (a clear message when it does not). */
export function existingFile(path: string, what: string): string {
  if (!existsSync(path)) throw new Error(`${path}: no such file (${what})`);
  if (!statSync(path).isFile()) throw new Error(`${path}: not a file (${what})`);
  return path;
}

/**
 * The file that --out names, checked before any work is done (a wrong name must not cost a run): it ends in one of
 * `extensions` and is not a folder. Its folder is made, so an unwritable place fails now too.
 */
export function outputFile(path: string, what: string, extensions: readonly string[]): string {
  if (path === '') throw new UsageError(`--out is empty: name a file for ${what}`);
  if (!extensions.includes(extname(path).toLowerCase()))
    throw new UsageError(`--out ${path}: name a file ending in ${extensions.join(', ')} for ${what}`);
  if (existsSync(path) && statSync(path).isDirectory())
    throw new UsageError(
      `--out ${path} is a folder; name the file for ${what}, e.g. ${join(path, `out${extensions[0]}`)}`,
    );
  makeOutputDir(dirname(path), `folder for ${what}`);
  return path;
}

/**
 * The folder that --out names, checked before any work is done and made (makeOutputDir: not an existing file), and
 * not a new name that looks like an image file's (`-o out.png` would otherwise become a folder called out.png).
 */
export function outputFolder(path: string, what: string): string {
  if (path === '') throw new UsageError(`--out is empty: name a folder for ${what}`);
  if (!existsSync(path) && WRITABLE_IMAGE_EXTENSIONS.includes(extname(path).toLowerCase()))
    throw new UsageError(
      `--out ${path} looks like an image file's name, but ${what} go into a folder (one file each): name a folder`,
    );
  makeOutputDir(path, `folder for ${what}`); // and not an existing file
  return path;
}

const FILE_NAMES = { tokenizer: 'tokenizer.safetensors', generator: 'generator.safetensors', t2i: 't2i.safetensors' };

/** Whether the command names no model at all (then it runs the shipped ones). */
export const namesNoModel = (o: Parsed['options']): boolean => !(o.model || o.tokenizer || o.generator || o.t2i);

/**
 * Which files to load, from --model (a folder or one file) and the explicit --tokenizer/--generator/--t2i; with
 * none of them, the shipped models of `family`.
 */
export function modelSources(
  o: Parsed['options'],
  log: (m: string) => void,
  family: ShippedFamily = 'fashion-mnist',
): RepTokSources {
  if (namesNoModel(o)) {
    const dir = shippedDir(family);
    log(`no model given: using the shipped ${family} models in ${dir} (--model DIR chooses others)`);
    return modelSources({ ...o, model: dir }, log);
  }
  const sources: RepTokSources = {
    device: deviceFor(o.device ?? 'cpu', undefined),
    packWeights: o['pack-weights'] ?? true,
    precision: pipelinePrecision(o.precision ?? 'fp32'),
  };
  if (o.model) {
    if (!existsSync(o.model)) throw new Error(`${o.model}: no such file or folder (--model)`);
    if (statSync(o.model).isDirectory()) {
      for (const [kind, name] of Object.entries(FILE_NAMES))
        if (existsSync(join(o.model, name))) sources[kind as keyof typeof FILE_NAMES] = join(o.model, name);
      if (!Object.keys(sources).some((k) => k in FILE_NAMES))
        throw new Error(`${o.model}: no ${Object.values(FILE_NAMES).join(', ')} in this folder (--model)`);
    } else if (o.model.endsWith('.safetensors')) {
      sources[peekModelFile(o.model).kind as keyof typeof FILE_NAMES] = o.model;
    } else {
      sources.checkpoint = o.model;
      sources.checkpointOptions = checkpointOptions(o);
      sources.onNote = log;
    }
  }
  if (!sources.checkpoint && (o['model-yaml'] || o['encoder-heads']))
    throw new UsageError(
      `--${o['model-yaml'] ? 'model-yaml' : 'encoder-heads'} describes a released checkpoint (.ckpt), and --model ` +
        'names none: leave it out, or pass the .ckpt as --model',
    );
  for (const kind of ['tokenizer', 'generator', 't2i'] as const)
    if (o[kind]) sources[kind] = existingFile(o[kind], `--${kind}`);
  // a generator records the tokenizer it was trained on: use it when none is given, and say so
  const gen = (sources.generator ?? sources.t2i) as string | undefined;
  if (!sources.tokenizer && !sources.checkpoint && gen) {
    const recorded = peekModelFile(gen).extra.tokenizerFile;
    if (!recorded || !existsSync(recorded))
      throw new Error(
        'no tokenizer given: pass --tokenizer FILE' +
          (recorded ? ` (${gen} was trained with ${recorded}, which is not there)` : ''),
      );
    log(`using the tokenizer ${gen} was trained with: ${recorded}`);
    sources.tokenizer = recorded;
  }
  if (!sources.tokenizer && !sources.checkpoint)
    throw new UsageError('which model? pass --model DIR (or --tokenizer FILE)');
  return sources;
}

/** --precision, checked. */
function pipelinePrecision(p: string): PrecisionSetting {
  if (!isPrecisionSetting(p)) throw new UsageError(`--precision must be one of ${PRECISIONS.join(', ')}, got '${p}'`);
  return p;
}

/** Applies --threads and loads the pipeline from the command's options (no model named: `family`'s shipped ones). */
export function loadPipeline(o: Parsed['options'], family: ShippedFamily = 'fashion-mnist'): RepTok {
  if (!(Number.isInteger(o.threads) && o.threads >= 0))
    throw new UsageError(`--threads must be a non-negative integer, got ${o.threads}`);
  if (o.threads > 0) setNumThreads(o.threads);
  return RepTok.load(modelSources(o, note(o), family));
}

/** Messages for people (stderr), silent with --json. */
export const note =
  (o: Parsed['options']) =>
  (message: string): void => {
    if (!o.json) process.stderr.write(`${message}\n`);
  };

/** The progress bar of a command (off with --json). */
export const bar = (o: Parsed['options']) => progressBar(!o.json);

/** Prints a command's result: the JSON object with --json, else the human summary. */
export function report(o: Parsed['options'], result: Record<string, unknown>, human: string): void {
  console.log(o.json ? JSON.stringify(result) : human);
}

/** A folder of model sets: one model folder (it holds a model file) or a folder of them (like `weights/`). */
export function modelFolders(dir: string): { name: string; dir: string }[] {
  const isModelFolder = (d: string) => Object.values(FILE_NAMES).some((f) => existsSync(join(d, f)));
  if (isModelFolder(dir)) return [{ name: basename(resolve(dir)), dir }];
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && isModelFolder(join(dir, e.name)))
    .map((e) => ({ name: e.name, dir: join(dir, e.name) }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * The model sets a command that offers several (serve, demo) runs: every model folder under --model (default: the
 * shipped ones in weights/), or the one set --tokenizer/--generator/--t2i name.
 */
export function modelSets(o: Parsed['options'], log: (m: string) => void): ModelSet[] {
  if (o.tokenizer || o.generator || o.t2i || (o.model && statSync(o.model, { throwIfNoEntry: false })?.isFile()))
    return [{ name: 'model', sources: modelSources(o, log), dir: o.model }];
  const dir: string = o.model ?? SHIPPED_WEIGHTS;
  const folders = modelFolders(dir);
  if (folders.length === 0)
    throw new Error(
      (existsSync(dir)
        ? `${dir}: no model files (${Object.values(FILE_NAMES).join(', ')}) in this folder or its sub-folders (--model)`
        : `${dir}: no such folder (--model)`) +
        (o.model === undefined
          ? '; the shipped models are missing: train them with `node scripts/train-weights.mjs` (docs/training.md), ' +
            'pass --model DIR with trained ones, or train small ones with `reptok demo --train`'
          : ''),
    );
  return folders.map((f) => ({ name: f.name, dir: f.dir, sources: modelSources({ ...o, model: f.dir }, log) }));
}
