// Flow matching on tokens in the generator convention (t = 0 noise, t = 1 data): training loss, validation loss
// over equal t-segments (Esser et al., 2024: it tracks sample quality), and sampling with guidance.
// Reference: CompVis/RepTok reptok/flow.py (FlowModel).
import { Tensor, full, linspace, randnLike, stack, tidy, type GeneratorLike } from '../engine/index.ts';
import { generatorPath, sampleTime, type TimeSampler } from './paths.ts';
import { solve, type SolveOptions, type SolveResult } from './ode.ts';
import { guided, type GuidableField, type GuidanceOptions } from './guidance.ts';

/** A velocity network over a batch: x (B, ...) at times t (B). */
export type BatchVelocity = (x: Tensor, t: Tensor) => Tensor;

/** mean over everything of (v(x_t, t) − u)², u = x₁ − x₀ (the reference's training_losses). */
export function flowLoss(
  v: BatchVelocity,
  x1: Tensor,
  o: { x0?: Tensor; t?: Tensor; sampler?: TimeSampler; generator?: GeneratorLike } = {},
): { loss: Tensor; xt: Tensor; ut: Tensor; t: Tensor } {
  return tidy(() => {
    const x0 = o.x0 ?? randnLike(x1, { generator: o.generator });
    const t = o.t ?? sampleTime(x1.shape[0]!, o.sampler ?? { kind: 'uniform' }, o.generator);
    const xt = generatorPath.interpolate(x1, x0, t);
    const ut = generatorPath.target(x1, x0);
    return { loss: v(xt, t).sub(ut).square().mean(), xt, ut, t };
  });
}

/** The loss at the midpoints of K equal t-segments (same noise for all), and their mean. */
export function validationLoss(
  v: BatchVelocity,
  x1: Tensor,
  o: { x0?: Tensor; segments?: number; generator?: GeneratorLike } = {},
): { loss: Tensor; segments: Tensor } {
  const K = o.segments ?? 8;
  if (!(K > 0)) throw new RangeError('validation needs at least one segment');
  return tidy(() => {
    const x0 = o.x0 ?? randnLike(x1, { generator: o.generator });
    const mids = linspace(0, 1, K + 1)
      .slice(0, 0, K)
      .add(1 / (2 * K))
      .data(); // float32, as the reference
    const losses = [...mids].map((m) => flowLoss(v, x1, { x0, t: full([x1.shape[0]!], m) }).loss);
    const segments = stack(losses);
    return { loss: segments.mean(), segments };
  });
}

/**
 * Generates from noise x0 (t = 0) to data (t = 1). The fixed-step samplers step through the reference's float32 times
 * linspace(0, 1, N + 1); guidance applies inside `guidance.interval`.
 */
export function generate(
  field: GuidableField,
  x0: Tensor,
  o: SolveOptions & { guidance?: GuidanceOptions } = {},
): SolveResult {
  const times = o.sampler === 'dopri5' ? undefined : tidy(() => [...linspace(0, 1, (o.steps ?? 50) + 1).data()]);
  return solve(guided(field, o.guidance), x0, 0, 1, { ...o, times });
}
