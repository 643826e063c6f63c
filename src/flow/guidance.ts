// Classifier-free guidance (Ho & Salimans, 2022): v = v_uncond + s·(v_cond − v_uncond), evaluated for the
// conditional and unconditional inputs in one batched call, and applied only inside a time interval
// (Kynkäänniemi et al., 2024; RepTok uses [0.3, 0.9] with s = 1.5). Outside the interval only the conditional
// model runs, as the reference does.
import { Tensor, full, tidy } from '../engine/index.ts';
import type { VelocityFn } from './ode.ts';

export interface GuidanceOptions {
  /** Guidance scale s; 1 disables guidance. */
  scale?: number;
  /** Times [t0, t1] where guidance applies (compared in float32, like the reference's tensor comparison). */
  interval?: [number, number];
}

/**
 * A conditional model at times t (B): the conditional velocity alone, or the unconditional and conditional ones
 * from one batched evaluation.
 */
export interface GuidableField {
  cond(x: Tensor, t: Tensor): Tensor;
  uncondAndCond(x: Tensor, t: Tensor): [Tensor, Tensor];
}

/** v_uncond + s·(v_cond − v_uncond) at times t (B); s = 1 runs the conditional model only. */
export function guidedVelocity(field: GuidableField, x: Tensor, t: Tensor, scale: number): Tensor {
  if (scale === 1) return field.cond(x, t);
  return tidy(() => {
    const [u, c] = field.uncondAndCond(x, t);
    return u.add(c.sub(u).mul(scale));
  });
}

/**
 * Checks a guidance scale (a number ≥ 0) and interval (times a ≤ b in [0, 1]); a RangeError names what is wrong,
 * calling the two `names` (the commands pass their flags).
 */
export function checkGuidance(
  scale: number,
  interval: readonly number[],
  names = { scale: 'guidance scale', interval: 'guidance interval' },
): void {
  if (!(Number.isFinite(scale) && scale >= 0))
    throw new RangeError(`${names.scale} must be a number ≥ 0, got ${scale}`);
  if (!(interval.length === 2 && interval.every((x) => x >= 0 && x <= 1) && interval[0]! <= interval[1]!))
    throw new RangeError(`${names.interval} must be two times a,b with 0 ≤ a ≤ b ≤ 1, got '${interval.join(',')}'`);
}

/** The guided field as an ODE right-hand side: guidance inside the interval, the conditional model outside. */
export function guided(field: GuidableField, o: GuidanceOptions = {}): VelocityFn {
  const s = o.scale ?? 1;
  const interval = o.interval ?? [0, 1];
  checkGuidance(s, interval);
  const [lo, hi] = interval.map(Math.fround) as [number, number];
  return (x, t) =>
    tidy(() => {
      const tt = full([x.shape[0]!], t, { device: x.device });
      const tf = Math.fround(t);
      return guidedVelocity(field, x, tt, tf < lo || tf > hi ? 1 : s);
    });
}
