// Axial rotary position embedding on a 2-D grid (HDiT's AxialRoPE2D): cell positions on [-1, 1]², per-layer
// fixed frequencies, and the cos/sin of every layer's angles computed in one batch.
import { Tensor, cat, linspace, noGrad, stack, tidy } from '../engine/index.ts';
import { Module } from './module.ts';

/**
 * Cell centres of an h×w grid on the relative canvas [-1, 1]² as (row, col) pairs: (h·w, 2). On a non-square
 * grid the shorter side spans a proportionally shorter range, so cells stay square (the reference's bounding_box).
 */
export function axialPositions(h: number, w: number): Tensor {
  const ar = w / h;
  const [yMax, xMax] = ar > 1 ? [1 / ar, 1] : ar < 1 ? [1, ar] : [1, 1];
  return tidy(() => {
    const centres = (lo: number, hi: number, n: number): Tensor => {
      const edges = linspace(lo, hi, n + 1);
      return edges.slice(0, 0, n).add(edges.slice(0, 1)).div(2);
    };
    const ys = centres(-yMax, yMax, h).reshape(h, 1).expand(h, w);
    const xs = centres(-xMax, xMax, w).reshape(1, w).expand(h, w);
    return stack([ys, xs], -1).reshape(h * w, 2);
  });
}

/**
 * Axial rotary embedding on the first half of each head: frequencies log-spaced in [π, 10π] (fixed), a quarter
 * of the head rotated by the row position and a quarter by the column position; the other half passes unchanged.
 */
export class AxialRoPE2D extends Module {
  readonly freqs: Tensor; // (2, heads, dHead/8): rows height, width
  constructor(dHead: number, heads: number) {
    super();
    const dim = dHead / 2;
    if (!Number.isInteger(dim / 4)) throw new RangeError(`AxialRoPE2D: head dim ${dHead} must be a multiple of 8`);
    const f = noGrad(() =>
      tidy(() =>
        linspace(Math.log(Math.PI), Math.log(10 * Math.PI), (heads * dim) / 4 + 1)
          .slice(0, 0, (heads * dim) / 4)
          .exp(),
      ),
    );
    this.freqs = this.buffer(
      'freqs',
      noGrad(() =>
        tidy(() =>
          stack([f, f], 0)
            .reshape(2, dim / 4, heads)
            .transpose(-2, -1)
            .contiguous(),
        ),
      ),
    );
    f.dispose();
  }
}

/** cos θ and sin θ of one layer's RoPE angles, each (B, heads, L, dHead/4). */
export interface Rope {
  cos: Tensor;
  sin: Tensor;
}

/**
 * RoPE angles of every layer at once, for positions (B, L, 2) and the layers' `freqs` (2, heads, dHead/8): one
 * batch of products, one cos and one sin per forward instead of six small ops per layer (these tiny ops cost more
 * in dispatch than in arithmetic).
 */
export function axialRope(pos: Tensor, freqs: Tensor[]): Rope[] {
  return tidy(() => {
    const f = stack(freqs, 0).unsqueeze(1).unsqueeze(1); // (depth, 1, 1, 2, heads, dHead/8)
    // (depth, B, L, heads, dHead/8)
    const along = (axis: number): Tensor => pos.narrow(-1, axis, 1).unsqueeze(-1).mul(f.select(3, axis));
    const theta = cat([along(0), along(1)], -1)
      .movedim(-2, -3)
      .contiguous(); // (depth, B, heads, L, dHead/4)
    const [cos, sin] = [theta.cos(), theta.sin()];
    return freqs.map((_, i) => ({ cos: cos.select(0, i), sin: sin.select(0, i) }));
  });
}
