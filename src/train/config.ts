// Training configuration: typed per-stage configs, named presets, a JSON or YAML file on top, then
// `--set key=value` overrides (dotted paths). Unknown keys and wrongly typed values are errors that list what
// is valid, so a typo never silently trains the default.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

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
  /** 'fp32', or 'bf16' autocast on the CPU (faster matmuls where the CPU supports bfloat16). */
  precision: 'fp32' | 'bf16';
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
  precision: 'fp32',
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

/** Deep-merges `patch` into a copy of `base`, refusing keys `base` does not have and values of another type. */
export function mergeConfig<T extends object>(base: T, patch: Record<string, Json>, where: string): T {
  const out = structuredClone(base) as Record<string, unknown>;
  for (const [k, v] of Object.entries(patch)) {
    if (!(k in out))
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

/** `a.b.c=value` pairs -> a nested patch. */
export function setsToPatch(sets: string[]): Record<string, Json> {
  const patch: Record<string, Json> = {};
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--set expects key=value, got '${s}'`);
    const path = s.slice(0, eq).split('.');
    let node = patch;
    for (const part of path.slice(0, -1)) node = (node[part] ??= {}) as Record<string, Json>;
    node[path.at(-1)!] = parseValue(s.slice(eq + 1));
  }
  return patch;
}

/** Reads a JSON or YAML config file (by extension; .yml/.yaml are YAML). */
export function readConfigFile(path: string): Record<string, Json> {
  const text = readFileSync(path, 'utf8');
  try {
    const v = /\.ya?ml$/i.test(path) ? parseYaml(text) : JSON.parse(text);
    if (v === null || typeof v !== 'object' || Array.isArray(v))
      throw new Error('the top level must be a mapping of keys to values');
    return v as Record<string, Json>;
  } catch (e) {
    throw new ConfigError(`${path}: ${(e as Error).message}`);
  }
}

/** preset -> file -> --set, each layer validated against the preset's keys and types. */
export function resolveConfig<T extends CommonConfig>(preset: T, o: { file?: string; sets?: string[] } = {}): T {
  let c = preset;
  if (o.file) c = mergeConfig(c, readConfigFile(o.file), o.file);
  if (o.sets?.length) c = mergeConfig(c, setsToPatch(o.sets), '--set');
  if (c.stage !== preset.stage) throw new ConfigError(`the config is for stage '${c.stage}', not '${preset.stage}'`);
  for (const k of ['steps', 'batchSize', 'gradAccum'] as const) {
    if (!(Number.isInteger(c[k]) && c[k] > 0)) throw new ConfigError(`${k} must be a positive integer, got ${c[k]}`);
  }
  if (!(c.lr > 0)) throw new ConfigError(`lr must be positive, got ${c.lr}`);
  if (c.precision !== 'fp32' && c.precision !== 'bf16')
    throw new ConfigError(`precision must be 'fp32' or 'bf16', got '${c.precision}'`);
  return c;
}
