// Gradient clipping (torch.nn.utils.clip_grad_norm_).
import type { Tensor } from '../engine/index.ts';
import { native } from '../engine/native.ts';

/** Scales the gradients so their global p-norm is at most `maxNorm`; returns the norm before clipping. */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number, normType = 2): number {
  return native.clipGradNorm(
    [...params].filter((p) => p.requiresGrad).map((p) => p.handle),
    maxNorm,
    normType,
  );
}
