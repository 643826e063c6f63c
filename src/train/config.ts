// Training configuration: typed per-stage configs, named presets, a JSON or YAML file on top, then
// `--set key=value` overrides (dotted paths), then --steps. Unknown keys, wrongly typed values and numbers out of
// their range are errors that name the key and what is valid, so a typo never silently trains the default (or
// waits forever: prefetch=0).
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { parse as parseYaml } from 'yaml';

import { cannotRead } from '../io/unreadable.ts';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** The precision settings, as training's `precision` and the pipeline's take them ('auto' resolves by hardware). */
export const PRECISIONS = ['auto', 'fp32', 'bf16'] as const;
export type PrecisionSetting = (typeof PRECISIONS)[number];
export const isPrecisionSetting = (p: unknown): p is PrecisionSetting => (PRECISIONS as readonly unknown[]).includes(p);

/** What every stage's config has. */
export interface CommonConfig {
  stage: 'ssl' | 'tokenizer' | 'generator' | 't2i' | 'classifier';
  /** Data set: 'fashion-mnist', 'emoji', or 'folder:<path>'. */
  data: string;
  /** Folder of the Fashion-MNIST IDX files (default: Debian's dataset-fashion-mnist). */
  dataDir: string;
  steps: number;
  batchSize: number;
  /** Micro-batches accumulated per optimizer step. */
  gradAccum: number;
  lr: number;
  minLrRatio: number;
  warmupSteps: number;
  weightDecay: number;
  betas: [number, number];
  /** Global gradient-norm clipping (0 disables). */
  clipGrad: number;
  /** EMA decay of the weights used for sampling (0 disables EMA). */
  emaDecay: number;
  seed: number;
  logEvery: number;
  valEvery: number;
  sampleEvery: number;
  checkpointEvery: number;
  keepCheckpoints: number;
  /**
   * 'bf16': autocast (bfloat16 products with float32 accumulation, float32 weights and optimizer state); 'fp32';
   * 'auto' (default): bf16 on CPUs that multiply bfloat16 natively (AMX, AVX512-BF16), fp32 elsewhere — resolved
   * when the run starts, and stored resolved (see src/train/autocast.ts).
   */
  precision: PrecisionSetting;
  /** Threads for libtorch (0: all cores). */
  threads: number;
  /** Batches prepared ahead by the data worker. */
  prefetch: number;
}

export const COMMON_DEFAULTS: Omit<CommonConfig, 'stage' | 'data'> = {
  dataDir: '',
  steps: 1000,
  batchSize: 64,
  gradAccum: 1,
  lr: 1e-3,
  minLrRatio: 0.1,
  warmupSteps: 100,
  weightDecay: 0.05,
  betas: [0.9, 0.999],
  clipGrad: 1,
  emaDecay: 0.999,
  seed: 0,
  logEvery: 10,
  valEvery: 500,
  sampleEvery: 1000,
  checkpointEvery: 500,
  keepCheckpoints: 3,
  precision: 'auto',
  threads: 0,
  prefetch: 4,
};

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Parses a --set value: JSON when it parses (numbers, booleans, arrays, quoted strings), else the raw string. */
export function parseValue(raw: string): Json {
  try {
    return JSON.parse(raw) as Json;
  } catch {
    return raw;
  }
}

function typeOf(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

/**
 * Deep-merges `patch` into a copy of `base`, refusing keys `base` does not have (own keys only: `__proto__` and
 * `constructor` are unknown keys like any other) and values of another type.
 */
export function mergeConfig<T extends object>(base: T, patch: Record<string, Json>, where: string): T {
  const out = structuredClone(base) as Record<string, unknown>;
  for (const [k, v] of Object.entries(patch)) {
    if (!Object.hasOwn(out, k))
      throw new ConfigError(`${where}: unknown key '${k}'. Valid keys: ${Object.keys(out).sort().join(', ')}`);
    const cur = out[k];
    if (cur !== null && typeOf(cur) === 'object' && typeOf(v) === 'object') {
      out[k] = mergeConfig(cur as object, v as Record<string, Json>, `${where}.${k}`);
    } else if (cur !== null && v !== null && typeOf(cur) !== typeOf(v)) {
      throw new ConfigError(
        `${where}: '${k}' must be ${typeOf(cur) === 'array' ? 'an array' : `a ${typeOf(cur)}`} (like ` +
          `${JSON.stringify(cur)}), got ${JSON.stringify(v)}`,
      );
    } else {
      out[k] = v;
    }
  }
  return out as T;
}

/** `a.b.c=value` pairs -> a nested patch (prototype-free objects: a key is only ever data). */
export function setsToPatch(sets: string[]): Record<string, Json> {
  const patch: Record<string, Json> = Object.create(null);
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--set expects key=value, got '${s}'`);
    const path = s.slice(0, eq).split('.');
    let node = patch;
    for (const part of path.slice(0, -1)) {
      const next = Object.hasOwn(node, part) ? node[part] : undefined;
      if (next !== undefined && (next === null || typeof next !== 'object' || Array.isArray(next)))
        throw new ConfigError(`--set ${s}: '${part}' was already set to a value`);
      node = (next ?? (node[part] = Object.create(null))) as Record<string, Json>;
    }
    node[path.at(-1)!] = parseValue(s.slice(eq + 1));
  }
  return patch;
}

/** Reads a JSON or YAML config file (by extension; .yml/.yaml are YAML). */
export function readConfigFile(path: string): Record<string, Json> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`${path}: ${cannotRead(e)} (--config)`);
  }
  try {
    const v = /\.ya?ml$/i.test(path) ? parseYaml(text) : JSON.parse(text);
    if (v === null || typeof v !== 'object' || Array.isArray(v))
      throw new Error('the top level must be a mapping of keys to values');
    return v as Record<string, Json>;
  } catch (e) {
    throw new ConfigError(`${path}: ${(e as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Ranges. Every number in a config must be finite; the common keys and well-known names below have ranges;
// arrays of numbers keep the preset's length (betas=[] is an error).
// ---------------------------------------------------------------------------------------------------------------

interface Range {
  min: number;
  max?: number;
  /** min/max themselves excluded. */
  open?: boolean;
  integer?: boolean;
  /** Says what the key means when the range alone is unclear. */
  why?: string;
}

const count = (min: number, max?: number, why?: string): Range => ({ min, max, integer: true, why });
const fraction: Range = { min: 0, max: 1 };

/** Ranges of the keys every stage has (by top-level key). */
const COMMON_RANGES: Record<string, Range> = {
  steps: count(1),
  batchSize: count(1),
  gradAccum: count(1),
  lr: { min: 0, open: true, max: Infinity },
  minLrRatio: fraction,
  warmupSteps: count(0),
  weightDecay: { min: 0 },
  betas: { min: 0, max: 1, open: true },
  clipGrad: { min: 0, why: '0 disables clipping' },
  emaDecay: { min: 0, max: 1, why: '0 disables EMA; below 1' },
  seed: count(0),
  logEvery: count(1),
  valEvery: count(1),
  sampleEvery: count(1),
  checkpointEvery: count(1),
  keepCheckpoints: count(1),
  threads: count(0, availableParallelism(), `0 uses all cores; at most the ${availableParallelism()} of this machine`),
  prefetch: count(1, 64),
};

/** Ranges of well-known nested names (model sizes, probabilities, momenta), wherever they appear. */
const NAME_RANGES: [RegExp, Range][] = [
  [/^(depth|dim|width|heads|numHeads|embedDim|patchSize|imgSize|inChans|dHead|hidden|bottleneck|outDim)$/, count(1)],
  [/^(maxLength|imageSize|localSize|encoderInputSize|nTokens|segments|steps|tokens|images|testImages)$/, count(1)],
  [/^(samplesPerClass|evalSamplesPerClass|knnK|probeEpochs|maxTrain|maxTest|valTrain|valTest)$/, count(1)],
  [/^(localCrops|numRegisterTokens|newRegisters|nExtraTokens|minCount)$/, count(0)],
  [/(Prob|^hflip|Momentum|momentum|^brightness|^contrast|^saturation)$/, fraction],
  [/^(tokenMlpRatio|channelMlpRatio|ffExpand|mlpRatio|teacherTemp|studentTemp|scale)$/, { min: 0, open: true }],
];

function checkNumber(key: string, v: number, r: Range | undefined): void {
  if (Number.isFinite(v) && (!r || inRange(v, r))) return;
  const max = r?.max ?? Infinity;
  const range = !r
    ? ''
    : max === Infinity
      ? ` ${r.open ? '>' : '≥'} ${r.min}`
      : ` in ${r.open ? '(' : '['}${r.min}, ${max}${r.open ? ')' : ']'}`;
  const what = r?.integer ? `an integer${range}` : r ? range.slice(1) : 'a finite number';
  throw new ConfigError(
    `'${key}' must be ${Number.isFinite(v) ? what : 'a finite number'}, got ${v}${r?.why ? ` (${r.why})` : ''}`,
  );
}

function inRange(v: number, r: Range): boolean {
  const max = r.max ?? Infinity;
  if (r.integer && !Number.isSafeInteger(v)) return false;
  return r.open ? v > r.min && v < max : v >= r.min && v <= max;
}

/**
 * Checks every number of a config (and arrays of numbers against the preset's lengths); the one validation path
 * for presets, config files, --set and --steps. Throws a one-line ConfigError naming the key.
 */
export function checkConfig<T extends CommonConfig>(c: T, preset?: T): T {
  // key: the dotted path shown in errors; name: the last object key (an array's elements share its name)
  const walk = (v: unknown, p: unknown, key: string, name: string, top: boolean): void => {
    const range =
      top && Object.hasOwn(COMMON_RANGES, name) ? COMMON_RANGES[name] : NAME_RANGES.find(([re]) => re.test(name))?.[1];
    if (typeof v === 'number') return checkNumber(key, v, range);
    if (Array.isArray(v)) {
      if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'number') && v.length !== p.length)
        throw new ConfigError(
          `'${key}' must have ${p.length} numbers (like ${JSON.stringify(p)}), got ${JSON.stringify(v)}`,
        );
      v.forEach((x, i) => walk(x, Array.isArray(p) ? p[i] : undefined, `${key}[${i}]`, name, top));
      return;
    }
    if (v !== null && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) {
        const sub = p && typeof p === 'object' && Object.hasOwn(p, k) ? (p as Record<string, unknown>)[k] : undefined;
        walk(x, sub, key ? `${key}.${k}` : k, k, key === '');
      }
  };
  walk(c, preset, '', '', false);
  if (!isPrecisionSetting(c.precision))
    throw new ConfigError(
      `'precision' must be one of ${PRECISIONS.map((p) => `'${p}'`).join(', ')}, got '${c.precision}'`,
    );
  return c;
}

/** preset -> file -> --set -> --steps, each layer validated against the preset's keys, types and ranges. */
export function resolveConfig<T extends CommonConfig>(
  preset: T,
  o: { file?: string; sets?: string[]; steps?: number } = {},
): T {
  let c = preset;
  if (o.file) c = mergeConfig(c, readConfigFile(o.file), o.file);
  if (o.sets?.length) c = mergeConfig(c, setsToPatch(o.sets), '--set');
  if (o.steps !== undefined) c = mergeConfig(c, { steps: o.steps }, '--steps');
  if (c.stage !== preset.stage) throw new ConfigError(`the config is for stage '${c.stage}', not '${preset.stage}'`);
  return checkConfig(c, preset);
}
