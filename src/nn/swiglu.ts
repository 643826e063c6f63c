// The SwiGLU projection (Shazeer, "GLU Variants Improve Transformer", 2020): one Linear to both halves of the gate.
import { F, Tensor, tidy } from '../engine/index.ts';
import { Linear } from './layers.ts';

/** Linear to 2·out features, then a · silu(gate) with (a, gate) the two halves. */
export class LinearSwiGLU extends Linear {
  constructor(inFeatures: number, outFeatures: number) {
    super(inFeatures, 2 * outFeatures, { bias: false });
  }
  override forward(x: Tensor): Tensor {
    return tidy(() => F.swiglu(super.forward(x)));
  }
}
