// Paths between two tokens. Linear interpolation shrinks the token towards the origin midway (two unit vectors at
// 90° meet at norm 0.71), a region the decoder never saw in training; the default is a norm-aware spherical
// interpolation: the direction moves along the great circle (slerp, Shoemake 1985) while the norm moves linearly
// from one endpoint's to the other's, so every token on the path has a norm between the endpoints' norms.
import { Tensor, stack, tidy } from '../engine/index.ts';

export const INTERPOLATION_METHODS = ['slerp', 'lerp'] as const;
export type InterpolationMethod = (typeof INTERPOLATION_METHODS)[number];

/** Positions 0, 1/(N−1), …, 1 of N frames (N ≥ 2). */
export function framePositions(frames: number): number[] {
  if (!(Number.isInteger(frames) && frames >= 2)) throw new RangeError(`frames must be an integer ≥ 2, got ${frames}`);
  return Array.from({ length: frames }, (_, i) => i / (frames - 1));
}

/**
 * Tokens a (D) and b (D) -> (N, D) at positions s (0 gives a, 1 gives b). Each frame is wa·a + wb·b with weights
 * computed in double precision.
 */
export function interpolateTokens(a: Tensor, b: Tensor, positions: number[], method: InterpolationMethod): Tensor {
  if (a.ndim !== 1 || b.ndim !== 1 || a.shape[0] !== b.shape[0])
    throw new RangeError(`expected two tokens of the same width, got shapes [${a.shape}] and [${b.shape}]`);
  if (!INTERPOLATION_METHODS.includes(method))
    throw new RangeError(`method must be one of ${INTERPOLATION_METHODS.join(', ')}, got '${String(method)}'`);
  return tidy(() => {
    const weights = method === 'lerp' ? positions.map((s) => [1 - s, s] as const) : slerpWeights(a, b, positions);
    return stack(weights.map(([wa, wb]) => a.mul(wa).add(b.mul(wb))));
  });
}

function slerpWeights(a: Tensor, b: Tensor, positions: number[]): (readonly [number, number])[] {
  const [na, nb, dot] = tidy(() => [a.norm().item(), b.norm().item(), a.double().mul(b.double()).sum().item()]);
  if (!(na > 0 && nb > 0)) throw new RangeError('slerp needs two non-zero tokens (use lerp)');
  const omega = Math.acos(Math.min(1, Math.max(-1, dot / (na * nb))));
  const sinOmega = Math.sin(omega);
  return positions.map((s) => {
    const norm = (1 - s) * na + s * nb;
    // unit direction = ca·(a/|a|) + cb·(b/|b|); for (nearly) parallel tokens slerp tends to lerp of the directions
    const [ca, cb] =
      sinOmega < 1e-7 ? [1 - s, s] : [Math.sin((1 - s) * omega) / sinOmega, Math.sin(s * omega) / sinOmega];
    return [(norm * ca) / na, (norm * cb) / nb] as const;
  });
}
