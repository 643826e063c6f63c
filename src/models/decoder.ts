// RepTok's flow-matching decoder: a one-level HDiT-style transformer (Crowson et al., "Scalable High-Resolution
// Pixel-Space Image Synthesis with Hourglass Diffusion Transformers", 2024) that predicts the velocity of a latent
// (or pixel) grid, conditioned on the adapted token (prepended as an extra token) and on time (AdaRMSNorm).
// Reference: CompVis/RepTok reptok/encoder/encoder.py (Transformer, GenericTransformerLayer, AxialRoPE2D, ...).
// Module names are the reference's (`backbone.mid_merge`, `mid_level.N.self_attn.qkv_proj`, ...).
import { F, Tensor, cat, tidy, zeros } from '../engine/index.ts';
import {
  AdaRMSNorm,
  AxialRoPE2D,
  Linear,
  LinearSwiGLU,
  Module,
  ModuleList,
  RMSNorm,
  axialPositions,
  axialRope,
  init,
  type Rope,
} from '../nn/index.ts';

export interface DecoderConfig {
  /** Channels of the grid the flow runs on: 4 for SD-VAE latents, 1 or 3 for pixels. */
  channels: number;
  width: number;
  depth: number;
  dHead: number;
  ffExpand: number;
  patchSize: [number, number];
  /** Width of the time-mapping output that conditions every AdaRMSNorm. */
  condWidth: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Transformer layer: cosine attention with RoPE, then a SwiGLU feed-forward, both AdaRMSNorm'd on time
// ---------------------------------------------------------------------------------------------------------------

export class SelfAttention extends Module {
  readonly norm: AdaRMSNorm;
  readonly qkvProj: Linear;
  readonly scale: Tensor; // (heads): learned per-head temperature of the cosine attention
  readonly posEmb: AxialRoPE2D;
  readonly outProj: Linear;
  readonly heads: number;
  constructor(
    width: number,
    readonly dHead: number,
    condWidth: number,
  ) {
    super();
    this.heads = width / dHead;
    if (!Number.isInteger(this.heads))
      throw new RangeError(`decoder width ${width} is not a multiple of the head dim ${dHead}`);
    this.norm = this.module('norm', new AdaRMSNorm(width, condWidth));
    this.qkvProj = this.module('qkv_proj', new Linear(width, 3 * width, { bias: false }));
    this.scale = this.param('scale', zeros([this.heads]).fill_(10));
    this.posEmb = this.module('pos_emb', new AxialRoPE2D(dHead, this.heads));
    this.outProj = this.module('out_proj', new Linear(width, width, { bias: false }));
    init.zeros_(this.outProj.weight);
  }
  /**
   * x (B, L, W) with its RoPE angles (from `axialRope` with this layer's `posEmb.freqs`), time conditioning
   * cond (B, C).
   */
  forward(x: Tensor, rope: Rope, cond: Tensor): Tensor {
    const [B, L, W] = x.shape as [number, number, number];
    return tidy(() => {
      const qkv = this.qkvProj.forward(this.norm.forward(x, cond)).reshape(B, L, 3, this.heads, this.dHead);
      // cosine attention: q and k unit-normalised, each scaled by sqrt(s_h), so q·k = s_h cos(q, k); then RoPE
      const [q, k] = F.cosineRopeQK(qkv, this.scale, rope.cos, rope.sin); // (B, H, L, e)
      const v = qkv.select(2, 2).transpose(1, 2); // (B, H, L, e)
      const o = F.scaledDotProductAttention(q, k, v, { scale: 1 }).transpose(1, 2).reshape(B, L, W);
      return x.add(this.outProj.forward(o));
    });
  }
}

export class FeedForward extends Module {
  readonly norm: AdaRMSNorm;
  readonly upProj: LinearSwiGLU;
  readonly downProj: Linear;
  constructor(width: number, dFF: number, condWidth: number) {
    super();
    this.norm = this.module('norm', new AdaRMSNorm(width, condWidth));
    this.upProj = this.module('up_proj', new LinearSwiGLU(width, dFF));
    this.downProj = this.module('down_proj', new Linear(dFF, width, { bias: false }));
    init.zeros_(this.downProj.weight);
  }
  forward(x: Tensor, cond: Tensor): Tensor {
    return tidy(() => x.add(this.downProj.forward(this.upProj.forward(this.norm.forward(x, cond)))));
  }
}

export class TransformerLayer extends Module {
  readonly selfAttn: SelfAttention;
  readonly ff: FeedForward;
  constructor(c: DecoderConfig) {
    super();
    this.selfAttn = this.module('self_attn', new SelfAttention(c.width, c.dHead, c.condWidth));
    this.ff = this.module('ff', new FeedForward(c.width, c.width * c.ffExpand, c.condWidth));
  }
  forward(x: Tensor, rope: Rope, cond: Tensor): Tensor {
    return tidy(() => this.ff.forward(this.selfAttn.forward(x, rope, cond), cond));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Patch merge (in) and un-merge (out)
// ---------------------------------------------------------------------------------------------------------------

/** Groups nh×nw neighbours (flattened as (nh, nw, e), channel innermost) and projects them; positions are averaged. */
class TokenMerge2D extends Module {
  readonly proj: Linear;
  constructor(
    inFeatures: number,
    outFeatures: number,
    readonly patch: [number, number],
  ) {
    super();
    this.proj = this.module('proj', new Linear(inFeatures * patch[0] * patch[1], outFeatures, { bias: false }));
  }
  forward(x: Tensor, pos: Tensor): { x: Tensor; pos: Tensor } {
    const [B, H, W, E] = x.shape as [number, number, number, number];
    const [nh, nw] = this.patch;
    const [h, w] = [H / nh, W / nw];
    return tidy(() => {
      const merged = x
        .reshape(B, h, nh, w, nw, E)
        .permute(0, 1, 3, 2, 4, 5)
        .reshape(B, h, w, nh * nw * E);
      const p = pos
        .reshape(B, h, nh, w, nw, 2)
        .permute(0, 1, 3, 2, 4, 5)
        .reshape(B, h, w, nh * nw, 2)
        .mean(-2);
      return { x: this.proj.forward(merged), pos: p }; // (B, h, w, width), (B, h, w, 2)
    });
  }
}

/** The input side (`mid_merge`): patch merge, then the conditioning token prepended, then one shared projection. */
class AddTokens extends Module {
  readonly proj: Linear;
  readonly preProj: TokenMerge2D;
  constructor(channels: number, width: number, patch: [number, number]) {
    super();
    this.proj = this.module('proj', new Linear(width, width, { bias: false }));
    this.preProj = this.module('pre_proj', new TokenMerge2D(channels, width, patch));
  }
  forward(x: Tensor, pos: Tensor, extra: Tensor, posExtra: Tensor): { x: Tensor; pos: Tensor } {
    return tidy(() => {
      const m = this.preProj.forward(x, pos);
      const [B, h, w, W] = m.x.shape as [number, number, number, number];
      const tokens = cat([extra, m.x.reshape(B, h * w, W)], 1); // (B, 1+N, W)
      return { x: this.proj.forward(tokens), pos: cat([posExtra, m.pos.reshape(B, h * w, 2)], 1) };
    });
  }
}

/** The output side (`mid_split.post_proj`): RMSNorm, projection to nh·nw·C, un-merge back to the grid. */
class TokenSplitLast2D extends Module {
  readonly norm: RMSNorm;
  readonly proj: Linear;
  constructor(
    width: number,
    channels: number,
    readonly patch: [number, number],
  ) {
    super();
    this.norm = this.module('norm', new RMSNorm(width));
    this.proj = this.module('proj', new Linear(width, channels * patch[0] * patch[1], { bias: false }));
    init.zeros_(this.proj.weight);
  }
  forward(x: Tensor): Tensor {
    const [B, h, w] = x.shape as [number, number, number, number];
    const [nh, nw] = this.patch;
    return tidy(() => {
      const y = this.proj.forward(this.norm.forward(x)); // (B, h, w, nh·nw·C)
      const C = y.shape[3]! / (nh * nw);
      return y
        .reshape(B, h, w, nh, nw, C)
        .permute(0, 1, 3, 2, 4, 5)
        .reshape(B, h * nh, w * nw, C);
    });
  }
}

class RemoveTokens extends Module {
  readonly postProj: TokenSplitLast2D;
  constructor(width: number, channels: number, patch: [number, number]) {
    super();
    this.postProj = this.module('post_proj', new TokenSplitLast2D(width, channels, patch));
  }
  /** Drops the conditioning token and restores the (h, w) token grid. */
  forward(x: Tensor, h: number, w: number): Tensor {
    return tidy(() => this.postProj.forward(x.slice(1, 1).reshape(x.shape[0]!, h, w, x.shape[2]!)));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The decoder transformer (`backbone`)
// ---------------------------------------------------------------------------------------------------------------

export class DecoderTransformer extends Module {
  readonly config: DecoderConfig;
  readonly midMerge: AddTokens;
  readonly midLevel: ModuleList<TransformerLayer>;
  readonly midSplit: RemoveTokens;

  constructor(config: DecoderConfig) {
    super();
    this.config = { ...config, patchSize: [...config.patchSize] };
    this.midMerge = this.module('mid_merge', new AddTokens(config.channels, config.width, config.patchSize));
    this.midLevel = this.module(
      'mid_level',
      new ModuleList(Array.from({ length: config.depth }, () => new TransformerLayer(config))),
    );
    this.midSplit = this.module('mid_split', new RemoveTokens(config.width, config.channels, config.patchSize));
  }

  /**
   * Velocity for a grid x (B, C, H, W) at time conditioning `cond` (B, condWidth), given the adapted token
   * `extra` (B, 1, W) at position `posExtra` (B, 1, 2). H and W must be multiples of the patch size.
   */
  forward(x: Tensor, cond: Tensor, extra: Tensor, posExtra: Tensor): Tensor {
    const [B, C, H, W] = x.shape as [number, number, number, number];
    const [nh, nw] = this.config.patchSize;
    if (C !== this.config.channels) throw new RangeError(`decoder expects ${this.config.channels} channels, got ${C}`);
    if (H % nh || W % nw)
      throw new RangeError(`decoder input ${H}×${W} is not a multiple of the patch size ${nh}×${nw}`);
    return tidy(() => {
      const pos = axialPositions(H, W).reshape(1, H, W, 2).expand(B, H, W, 2);
      const m = this.midMerge.forward(x.permute(0, 2, 3, 1), pos, extra, posExtra); // (B, 1+N, width)
      const layers = [...this.midLevel];
      const rope = axialRope(
        m.pos,
        layers.map((layer) => layer.selfAttn.posEmb.freqs),
      );
      let h = m.x;
      for (const [i, layer] of layers.entries()) h = layer.forward(h, rope[i]!, cond);
      return this.midSplit.forward(h, H / nh, W / nw).permute(0, 3, 1, 2); // (B, C, H, W)
    });
  }
}
