// ODE solvers for flow sampling: integrate dz/dt = v(z, t) from t0 to t1. Euler is the reference loop; Heun is
// second order (2 evaluations per step); Dormand–Prince 5(4) adapts its steps to tolerances. Each reports NFE.
import { Tensor, tidy } from '../engine/index.ts';

/** The velocity field: z (B, ...) at scalar time t -> dz/dt (B, ...). */
export type VelocityFn = (z: Tensor, t: number) => Tensor;

export const SAMPLERS = ['euler', 'heun', 'dopri5'] as const;
export type SamplerName = (typeof SAMPLERS)[number];

export interface SolveOptions {
  sampler?: SamplerName;
  /** Steps for the fixed-step samplers. */
  steps?: number;
  /** Explicit times t_0 … t_N for the fixed-step samplers (overrides `steps`; e.g. float32 linspace values). */
  times?: number[];
  /** Tolerances of the adaptive sampler. */
  atol?: number;
  rtol?: number;
  /** Upper bound on evaluations of the adaptive sampler. */
  maxNfe?: number;
  /** Called after each (accepted) step with the fraction of the time span covered so far (progress bars). */
  onStep?: (fraction: number) => void;
}

export interface SolveResult {
  z: Tensor;
  nfe: number;
}

/** Integrates from t0 to t1 (either direction). The result is a new tensor; z0 is not modified. */
export function solve(v: VelocityFn, z0: Tensor, t0: number, t1: number, o: SolveOptions = {}): SolveResult {
  const sampler = o.sampler ?? 'euler';
  if (!SAMPLERS.includes(sampler))
    throw new RangeError(`sampler must be one of ${SAMPLERS.join(', ')}, got '${String(sampler)}'`);
  if (sampler === 'dopri5') return dopri5(v, z0, t0, t1, o);
  const steps = o.times ? o.times.length - 1 : (o.steps ?? 50);
  if (!(Number.isInteger(steps) && steps > 0)) throw new RangeError(`steps must be a positive integer, got ${steps}`);
  // default times as the decoder reference builds them: t_i = t0 + (t1 − t0)·i/N (i/N from N down to 1)
  const ts = o.times ?? Array.from({ length: steps + 1 }, (_, i) => (t0 * (steps - i) + t1 * i) / steps);
  let z = z0;
  let nfe = 0;
  for (let i = 0; i < steps; i++) {
    const [t, tn] = [ts[i]!, ts[i + 1]!];
    const next = tidy(() => {
      const h = tn - t;
      const k1 = v(z, t);
      if (sampler === 'euler') return z.add(k1.mul(h));
      const k2 = v(z.add(k1.mul(h)), tn);
      return z.add(k1.add(k2).mul(h / 2));
    });
    nfe += sampler === 'euler' ? 1 : 2;
    if (z !== z0) z.dispose();
    z = next;
    o.onStep?.((i + 1) / steps);
  }
  return { z: z === z0 ? z0.clone() : z, nfe };
}

// Dormand–Prince 5(4) tableau
const C = [0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1, 1];
const A = [
  [],
  [1 / 5],
  [3 / 40, 9 / 40],
  [44 / 45, -56 / 15, 32 / 9],
  [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
  [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
  [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84],
];
const B5 = [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0];
const B4 = [5179 / 57600, 0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40];

function dopri5(v: VelocityFn, z0: Tensor, t0: number, t1: number, o: SolveOptions): SolveResult {
  const atol = o.atol ?? 1e-5;
  const rtol = o.rtol ?? 1e-5;
  const maxNfe = o.maxNfe ?? 10_000;
  const dir = Math.sign(t1 - t0);
  let t = t0;
  let z = z0;
  let nfe = 1;
  let k1 = v(z, t);
  // initial step: a fraction of the interval scaled by the field's magnitude (Hairer's heuristic, simplified)
  let h =
    dir *
    Math.min(
      Math.abs(t1 - t0),
      tidy(() => 0.01 * Math.max(1e-6, z.norm().item() / Math.max(1e-6, k1.norm().item()))),
    );
  const scaledNorm = (err: Tensor, a: Tensor, b: Tensor): number =>
    tidy(() => err.div(a.abs().maximum(b.abs()).mul(rtol).add(atol)).square().mean().sqrt().item());
  while (dir * (t1 - t) > 1e-12) {
    if (nfe > maxNfe)
      throw new Error(`dopri5: more than ${maxNfe} evaluations before reaching t=${t1} (tolerances too tight?)`);
    if (dir * (t + h - t1) > 0) h = t1 - t;
    const step = tidy(() => {
      const ks: Tensor[] = [k1];
      for (let s = 1; s < 7; s++) {
        let zi = z;
        for (let j = 0; j < s; j++) if (A[s]![j]) zi = zi.add(ks[j]!.mul(h * A[s]![j]!));
        ks.push(v(zi, t + C[s]! * h));
      }
      let z5 = z;
      let e = ks[0]!.mul(0);
      for (let j = 0; j < 7; j++) {
        if (B5[j]) z5 = z5.add(ks[j]!.mul(h * B5[j]!));
        if (B5[j]! - B4[j]!) e = e.add(ks[j]!.mul(h * (B5[j]! - B4[j]!)));
      }
      return { z5, k7: ks[6]!, err: scaledNorm(e, z, z5) };
    });
    nfe += 6;
    if (step.err <= 1) {
      t += h;
      if (z !== z0) z.dispose();
      k1.dispose();
      z = step.z5;
      k1 = step.k7; // first-same-as-last: the last stage is the next step's first
      o.onStep?.(Math.min(1, (t - t0) / (t1 - t0)));
    } else {
      step.z5.dispose();
      step.k7.dispose();
    }
    h *= Math.min(5, Math.max(0.2, 0.9 * Math.pow(Math.max(step.err, 1e-10), -1 / 5)));
  }
  k1.dispose();
  return { z: z === z0 ? z0.clone() : z, nfe };
}
