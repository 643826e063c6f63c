// The trainer's precision setting: which one a run uses ('auto' picks by the hardware) and how it applies around a
// stage's forward pass.
import { autocast, bf16Support, type Device } from '../engine/index.ts';
import type { PrecisionSetting } from './config.ts';

export type Precision = Exclude<PrecisionSetting, 'auto'>;

/**
 * The precision a run uses: 'auto' is bf16 (autocast) on a CPU that multiplies bfloat16 natively — AMX or
 * AVX512-BF16, as oneDNN's kernels see it — where bf16 products take half of float32's time or less and models reach
 * float32's metrics (docs/bf16.md); float32 on other CPUs (where bf16 is emulated and slower) and on CUDA.
 */
export function resolvePrecision(p: PrecisionSetting, device: Device = 'cpu'): Precision {
  if (p !== 'auto') return p;
  return device === 'cpu' && bf16Support().native ? 'bf16' : 'fp32';
}

/** Why 'auto' resolved as it did, for the run's log. */
export function precisionReason(device: Device = 'cpu'): string {
  const s = bf16Support();
  if (device !== 'cpu') return `float32 on ${device}`;
  return s.native
    ? `this CPU multiplies bfloat16 natively: ${s.native}, oneDNN ISA ${s.isa}`
    : `this CPU has no native bfloat16 products: oneDNN ISA ${s.isa ?? 'none (no oneDNN)'}`;
}

export const withAutocast = <T>(precision: Precision, fn: () => T, device: Device = 'cpu'): T =>
  precision === 'bf16' ? autocast(fn, 'bfloat16', device) : fn();
