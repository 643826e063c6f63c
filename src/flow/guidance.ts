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

/** The guided field as an ODE right-hand side: guidance inside the interval, the conditional model outside. */
export function guided(field: GuidableField, o: GuidanceOptions = {}): VelocityFn {
  const s = o.scale ?? 1;
  const [lo, hi] = (o.interval ?? [0, 1]).map(Math.fround) as [number, number];
  return (x, t) =>
    tidy(() => {
      const tt = full([x.shape[0]!], t, { device: x.device });
      const tf = Math.fround(t);
      return guidedVelocity(field, x, tt, tf < lo || tf > hi ? 1 : s);
    });
}
