// Learning-rate schedules: functions from the step number (0-based) to a multiplier of the base learning rate.
import type { Optimizer } from './optimizer.ts';

export type Schedule = (step: number) => number;

export const constant = (): Schedule => () => 1;

/** Linear ramp from 1/warmup to 1 over `warmup` steps, then constant. */
export const linearWarmup =
  (warmup: number): Schedule =>
  (step) =>
    warmup > 0 && step < warmup ? (step + 1) / warmup : 1;

/** Linear warm-up, then cosine decay from 1 to `minRatio` at `total` steps. */
export function warmupCosine(o: { warmup: number; total: number; minRatio?: number }): Schedule {
  const min = o.minRatio ?? 0;
  return (step) => {
    if (o.warmup > 0 && step < o.warmup) return (step + 1) / o.warmup;
    const progress = Math.min(1, (step - o.warmup) / Math.max(1, o.total - o.warmup));
    return min + (1 - min) * 0.5 * (1 + Math.cos(Math.PI * progress));
  };
}

/** Applies a schedule to an optimizer: remembers each group's base learning rate and rescales it per step. */
export class LRScheduler {
  readonly baseLrs: number[];

  constructor(
    private readonly optimizer: Optimizer<{ lr: number }, any>,
    private readonly schedule: Schedule,
  ) {
    this.baseLrs = optimizer.groups.map((g) => g.options.lr);
  }

  /** Sets the learning rates for `step` and returns the first group's. */
  set(step: number): number {
    const f = this.schedule(step);
    this.optimizer.groups.forEach((g, i) => (g.options.lr = this.baseLrs[i]! * f));
    return this.optimizer.groups[0]!.options.lr;
  }
}
