// Results in host memory: the models may run on a GPU, while pictures are assembled, compared and encoded on the CPU.
import type { Tensor } from '../engine/index.ts';

/** `t` in host memory; takes `t` (disposes it and returns a tensor the caller owns). */
export function onHost(t: Tensor): Tensor {
  const h = t.to({ device: 'cpu' });
  t.dispose();
  return h;
}
