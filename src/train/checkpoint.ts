// Training checkpoints: one safetensors file per checkpoint holding the model, its EMA, the optimizer state and
// the random generators' states, with the step, data position, optimizer groups and resolved config in the
// metadata. Written atomically (temp file, fsync, rename); the last K are kept.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import type { StateDict, Tensor } from '../engine/index.ts';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.ts';
import type { OptimizerState } from '../optim/index.ts';
import type { BatchPosition } from '../data/batches.ts';

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
  if (metadata.format !== 'reptok-checkpoint-1')
    throw new Error(`${path}: not a reptok training checkpoint (format '${metadata.format ?? 'none'}')`);
  const part = (prefix: string): Map<string, Tensor> =>
    new Map([...tensors].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
  const ema = part('ema.');
  return {
    step: Number(metadata.step),
    model: part('model.'),
    ema: ema.size ? ema : null,
    optimizer: { tensors: part('optim.'), meta: JSON.parse(metadata.optimizer!) },
    rng: part('rng.'),
    data: JSON.parse(metadata.data!),
    config: JSON.parse(metadata.config!),
    extra: JSON.parse(metadata.extra ?? '{}'),
  };
}
