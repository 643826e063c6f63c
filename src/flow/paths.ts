// Rectified-flow paths in RepTok's two time conventions.
// - Decoder (stage A): t = 1 is noise, t = 0 is data; z_t = (1 − t)·x + t·ε, velocity v = ε − x;
//   t ~ logit-normal.
// - Generator (stage B): t = 0 is noise, t = 1 is data; x_t = t·x₁ + (1 − t)·x₀, target u = x₁ − x₀;
//   t ~ U(0, 1) (or logit-normal). In both, the network's output is dz/dt, so the same ODE solvers integrate either.
import { Tensor, rand, randn, tidy, type GeneratorLike } from '../engine/index.ts';

export type TimeSampler = { kind: 'uniform' } | { kind: 'logit-normal'; loc?: number; scale?: number };

/** B times in (0, 1): uniform, or sigmoid(N(loc, scale²)) (logit-normal, which concentrates on the middle). */
export function sampleTime(B: number, sampler: TimeSampler, generator?: GeneratorLike): Tensor {
  if (sampler.kind === 'uniform') return rand([B], { generator });
  return tidy(() =>
    randn([B], { generator })
      .mul(sampler.scale ?? 1)
      .add(sampler.loc ?? 0)
      .sigmoid(),
  );
}

/** t (B) broadcast against a batch x (B, ...). */
export const expandTime = (t: Tensor, like: Tensor): Tensor => t.reshape(t.shape[0]!, ...Array(like.ndim - 1).fill(1));

export const decoderPath = {
  /** z_t = (1 − t)·x + t·ε */
  interpolate: (x: Tensor, noise: Tensor, t: Tensor): Tensor =>
    tidy(() => {
      const te = expandTime(t, x);
      return te.rsub(1).mul(x).add(te.mul(noise));
    }),
  /** v = ε − x */
  target: (x: Tensor, noise: Tensor): Tensor => noise.sub(x),
  /** Integration goes from noise to data: t = 1 -> 0. */
  span: [1, 0] as [number, number],
};

export const generatorPath = {
  /** x_t = t·x₁ + (1 − t)·x₀ with x₁ data and x₀ noise */
  interpolate: (x1: Tensor, x0: Tensor, t: Tensor): Tensor =>
    tidy(() => {
      const te = expandTime(t, x1);
      return te.mul(x1).add(te.rsub(1).mul(x0));
    }),
  /** u = x₁ − x₀ */
  target: (x1: Tensor, x0: Tensor): Tensor => x1.sub(x0),
  span: [0, 1] as [number, number],
};

/** Per-sample mean squared error over all but the batch dimension. */
export function perSampleMse(pred: Tensor, target: Tensor): Tensor {
  return tidy(() => pred.sub(target).square().flatten(1).mean(1));
}
