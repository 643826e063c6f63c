// The pre-LayerNorm transformer block of ViT / GPT-2 style encoders: x + attn(norm1(x)), then + mlp(norm2(x)),
// multi-head self-attention through one fused qkv projection, GELU MLP of 4× width. Keys: norm1, qkv, proj, norm2,
// fc1, fc2 (timm's names).
import { F, Tensor, tidy } from '../engine/index.ts';
import { GELU, LayerNorm, Linear } from './layers.ts';
import { Module } from './module.ts';

export class TransformerBlock extends Module {
  readonly norm1: LayerNorm;
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly norm2: LayerNorm;
  readonly fc1: Linear;
  readonly act = new GELU();
  readonly fc2: Linear;
  constructor(
    width: number,
    readonly heads: number,
  ) {
    super();
    if (width % heads) throw new RangeError(`TransformerBlock: width ${width} is not a multiple of ${heads} heads`);
    this.norm1 = this.module('norm1', new LayerNorm(width));
    this.qkv = this.module('qkv', new Linear(width, 3 * width));
    this.proj = this.module('proj', new Linear(width, width));
    this.norm2 = this.module('norm2', new LayerNorm(width));
    this.fc1 = this.module('fc1', new Linear(width, 4 * width));
    this.fc2 = this.module('fc2', new Linear(4 * width, width));
  }
  /** x (B, L, W); `mask` as in F.scaledDotProductAttention (e.g. (B, 1, 1, L) booleans: true = attend to that key). */
  forward(x: Tensor, o: { mask?: Tensor } = {}): Tensor {
    const [B, L, W] = x.shape as [number, number, number];
    return tidy(() => {
      const [q, k, v] = this.qkv
        .forward(this.norm1.forward(x))
        .reshape(B, L, 3, this.heads, W / this.heads)
        .permute(2, 0, 3, 1, 4)
        .unbind(0) as [Tensor, Tensor, Tensor]; // (B, H, L, d)
      const a = F.scaledDotProductAttention(q, k, v, { mask: o.mask }).transpose(1, 2).reshape(B, L, W); // (B, L, W)
      const h = x.add(this.proj.forward(a));
      return h.add(this.fc2.forward(this.act.forward(this.fc1.forward(this.norm2.forward(h)))));
    });
  }
}
