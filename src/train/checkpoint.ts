// Training checkpoints: one safetensors file per checkpoint holding the model, its EMA, the optimizer state and
// the random generators' states, with the step, data position, optimizer groups and resolved config in the
// metadata. Written atomically (temp file, fsync, rename); the last K are kept. Resuming takes the newest one that
// loads and is consistent, falling back (with a warning) past a damaged one.
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import type { StateDict, Tensor } from '../engine/index.ts';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.ts';
import type { OptimizerState } from '../optim/index.ts';
import type { BatchPosition } from '../data/batches.ts';
import { atomicWriteText } from '../io/atomic.ts';

export interface CheckpointState {
  step: number;
  model: StateDict;
  ema: StateDict | null;
  optimizer: OptimizerState;
  rng: Map<string, Tensor>;
  data: BatchPosition;
  config: unknown;
  /** Anything else a stage needs to resume (JSON). */
  extra?: Record<string, unknown>;
}

const NAME = /^step-(\d{8})\.safetensors$/;
export const checkpointName = (step: number): string => `step-${String(step).padStart(8, '0')}.safetensors`;

export function listCheckpoints(dir: string): { step: number; path: string }[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((f) => ({ m: NAME.exec(f), f }))
    .filter((x) => x.m)
    .map((x) => ({ step: Number(x.m![1]), path: join(dir, x.f) }))
    .sort((a, b) => a.step - b.step);
}

export function saveCheckpoint(dir: string, s: CheckpointState, keep: number): string {
  const tensors = new Map<string, Tensor>();
  for (const [k, v] of s.model) tensors.set(`model.${k}`, v);
  if (s.ema) for (const [k, v] of s.ema) tensors.set(`ema.${k}`, v);
  for (const [k, v] of s.optimizer.tensors) tensors.set(`optim.${k}`, v);
  for (const [k, v] of s.rng) tensors.set(`rng.${k}`, v);
  const path = join(dir, checkpointName(s.step));
  saveSafetensors(path, tensors, {
    format: 'reptok-checkpoint-1',
    step: String(s.step),
    data: JSON.stringify(s.data),
    optimizer: JSON.stringify(s.optimizer.meta),
    config: JSON.stringify(s.config),
    extra: JSON.stringify(s.extra ?? {}),
  });
  for (const old of listCheckpoints(dir).slice(0, -Math.max(1, keep))) rmSync(old.path, { force: true });
  return path;
}

export function loadCheckpoint(path: string): CheckpointState {
  const { tensors, metadata } = loadSafetensors(path);
  try {
    const fail = (problem: string): never => {
      throw new Error(`${path}: ${problem}; the checkpoint is damaged or was not written by reptok`);
    };
    if (metadata.format !== 'reptok-checkpoint-1')
      throw new Error(`${path}: not a reptok training checkpoint (format '${metadata.format ?? 'none'}')`);
    const json = (key: string, fallback?: string): unknown => {
      const text = metadata[key] ?? fallback;
      if (text === undefined) return fail(`its metadata has no '${key}'`);
      try {
        return JSON.parse(text);
      } catch {
        return fail(`its metadata '${key}' is not valid JSON`);
      }
    };
    const step = Number(metadata.step);
    if (!/^\d+$/.test(metadata.step ?? '') || !Number.isSafeInteger(step))
      fail(`its step ${JSON.stringify(metadata.step ?? null)} is not a whole number`);
    const data = json('data') as BatchPosition;
    const isCount = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;
    if (data === null || typeof data !== 'object' || !isCount(data.epoch) || !isCount(data.index))
      fail(`its data position ${metadata.data} is not {epoch, index} of whole numbers`);
    const optimizer = json('optimizer');
    if (optimizer === null || typeof optimizer !== 'object') fail('its optimizer state is not an object');
    const part = (prefix: string): Map<string, Tensor> =>
      new Map([...tensors].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
    const rng = part('rng.');
    if (!rng.has('train') || !rng.has('global')) fail("it lacks the random generators' states");
    const ema = part('ema.');
    return {
      step,
      model: part('model.'),
      ema: ema.size ? ema : null,
      optimizer: { tensors: part('optim.'), meta: optimizer as OptimizerState['meta'] },
      rng,
      data: { epoch: data.epoch, index: data.index },
      config: json('config'),
      extra: json('extra', '{}') as Record<string, unknown>,
    };
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  }
}

/**
 * The newest checkpoint in `dir` that loads (null when there is none). A damaged newer one (a disk error, a copy
 * cut short) is skipped with a warning naming it and why, rather than stopping the resume; `use` runs on the
 * loaded state and may refuse it too (a step past the run's end), which also falls back.
 */
export function loadLatestCheckpoint<R>(
  dir: string,
  use: (c: CheckpointState, path: string) => R,
  warn: (msg: string) => void,
): { path: string; result: R } | null {
  const all = listCheckpoints(dir).reverse();
  const problems: string[] = [];
  for (const { path } of all) {
    let result: R;
    try {
      result = use(loadCheckpoint(path), path);
    } catch (e) {
      problems.push((e as Error).message);
      warn(`warning: cannot resume from ${path}: ${(e as Error).message.replace(`${path}: `, '')}`);
      continue;
    }
    if (problems.length) warn(`warning: resuming from the older checkpoint ${path}`);
    return { path, result };
  }
  if (all.length) throw new Error(`no checkpoint in ${dir} can be resumed from:\n  ${problems.join('\n  ')}`);
  return null;
}

/**
 * Drops the lines of a metrics log (JSONL, one {step, ...} per line) after `step`, and any line a kill cut short:
 * a resumed run replays the steps after its checkpoint and would otherwise log them twice.
 */
export function truncateMetrics(path: string, step: number): void {
  if (!existsSync(path)) return;
  const lines = readFileSync(path, 'utf8').split('\n');
  const keep = lines.filter((line) => {
    try {
      const r = JSON.parse(line) as { step?: unknown };
      return typeof r.step === 'number' && r.step <= step;
    } catch {
      return false;
    }
  });
  if (keep.length !== lines.filter((l) => l !== '').length) atomicWriteText(path, keep.map((l) => `${l}\n`).join(''));
}
