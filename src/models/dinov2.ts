// DINOv2 vision transformers — Oquab et al., "DINOv2: Learning Robust Visual Features without Supervision"
// (2023), with registers — Darcet et al., "Vision Transformers Need Registers" (2024).
// Reference: facebookresearch/dinov2, dinov2/models/vision_transformer.py and dinov2/layers/*. Module and
// parameter names are the reference's, so official checkpoints load without renaming (Hub checkpoints go through
// dinov2-weights.ts).
import { F, Tensor, cat, empty, noGrad, tidy, where, zeros, type GeneratorLike } from '../engine/index.ts';
import { GELU, Identity, LayerNorm, Linear, Module, ModuleList, Conv2d, init, type UnaryModule } from '../nn/index.ts';

export interface Dinov2Config {
  /** Image size the position embeddings were trained for (518 for the released models: a 37×37 grid). */
  imgSize: number;
  patchSize: number;
  inChans: number;
  embedDim: number;
  depth: number;
  numHeads: number;
  mlpRatio: number;
  /** 'mlp' (GELU MLP) or 'swiglu' (the giant model's SwiGLU FFN). */
  ffn: 'mlp' | 'swiglu';
  qkvBias: boolean;
  /** LayerScale initial value; null means no LayerScale. */
  initValues: number | null;
  numRegisterTokens: number;
  /** Position-embedding resize: register models use antialias and an output size... */
  interpolateAntialias: boolean;
  /** ...classic models a scale factor (h0 + offset) / M with offset 0.1. */
  interpolateOffset: number;
  layerNormEps: number;
}

export interface ForwardOptions {
  /** (B, N) booleans: patches replaced by the mask token (masked image modelling). */
  masks?: Tensor;
  /** (1, 1, D): an alternative input [cls] embedding. */
  clsToken?: Tensor;
  /** (B, N, D): `embedPatches(x)` computed earlier for the same images, reused (x is then not embedded again). */
  embedded?: Tensor;
}

export interface Dinov2Features {
  xNormClstoken: Tensor; // (B, D)
  xNormRegtokens: Tensor; // (B, R, D)
  xNormPatchtokens: Tensor; // (B, N, D)
  xPrenorm: Tensor; // (B, 1+R+N, D)
}

// ---------------------------------------------------------------------------------------------------------------
// Layers
// ---------------------------------------------------------------------------------------------------------------

class PatchEmbed extends Module {
  readonly proj: Conv2d;
  constructor(
    readonly patchSize: number,
    inChans: number,
    embedDim: number,
  ) {
    super();
    this.proj = this.module('proj', new Conv2d(inChans, embedDim, patchSize, { stride: patchSize }));
  }
  forward(x: Tensor): Tensor {
    const [, , H, W] = x.shape as [number, number, number, number];
    if (H % this.patchSize || W % this.patchSize)
      throw new RangeError(`DINOv2: image size ${H}×${W} is not a multiple of the patch size ${this.patchSize}`);
    return tidy(() => this.proj.forward(x).flatten(2).transpose(1, 2)); // (B, N, D)
  }
}

class Attention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  constructor(
    dim: number,
    readonly numHeads: number,
    qkvBias: boolean,
  ) {
    super();
    this.qkv = this.module('qkv', new Linear(dim, 3 * dim, { bias: qkvBias }));
    this.proj = this.module('proj', new Linear(dim, dim));
  }
  forward(x: Tensor): Tensor {
    const [B, N, C] = x.shape as [number, number, number];
    return tidy(() => {
      const [q, k, v] = this.qkv
        .forward(x)
        .reshape(B, N, 3, this.numHeads, C / this.numHeads)
        .permute(2, 0, 3, 1, 4)
        .unbind(0) as [Tensor, Tensor, Tensor]; // (B, H, N, d)
      const o = F.scaledDotProductAttention(q, k, v).transpose(1, 2).reshape(B, N, C); // (B, N, C)
      return this.proj.forward(o);
    });
  }
  /** Attention output of the first token only (B, 1, C): its query against every key, without the other queries. */
  forwardFirst(x: Tensor): Tensor {
    const [B, N, C] = x.shape as [number, number, number];
    const d = C / this.numHeads;
    return tidy(() => {
      const w = this.qkv.weight; // (3C, C): rows q, k, v
      const b = this.qkv.bias;
      const q = F.linear(x.slice(1, 0, 1), w.narrow(0, 0, C), b?.narrow(0, 0, C))
        .reshape(B, 1, this.numHeads, d)
        .transpose(1, 2); // (B, H, 1, d)
      const [k, v] = F.linear(x, w.narrow(0, C, 2 * C), b?.narrow(0, C, 2 * C))
        .reshape(B, N, 2, this.numHeads, d)
        .permute(2, 0, 3, 1, 4)
        .unbind(0) as [Tensor, Tensor]; // (B, H, N, d)
      return this.proj.forward(F.scaledDotProductAttention(q, k, v).transpose(1, 2).reshape(B, 1, C));
    });
  }
}

class Mlp extends Module implements UnaryModule {
  readonly fc1: Linear;
  readonly act = new GELU();
  readonly fc2: Linear;
  constructor(dim: number, hidden: number) {
    super();
    this.fc1 = this.module('fc1', new Linear(dim, hidden));
    this.fc2 = this.module('fc2', new Linear(hidden, dim));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.fc2.forward(this.act.forward(this.fc1.forward(x))));
  }
}

/**
 * The giant model's FFN: silu(x W1) ⊙ (x W2) W3 with W1, W2 fused as `w12`; hidden size rounded as in the reference.
 */
class SwiGLUFFN extends Module implements UnaryModule {
  readonly w12: Linear;
  readonly w3: Linear;
  constructor(dim: number, hidden: number) {
    super();
    const h = Math.floor((Math.floor((hidden * 2) / 3) + 7) / 8) * 8; // SwiGLUFFNFused's alignment
    this.w12 = this.module('w12', new Linear(dim, 2 * h));
    this.w3 = this.module('w3', new Linear(h, dim));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const [x1, x2] = this.w12.forward(x).chunk(2, -1) as [Tensor, Tensor];
      return this.w3.forward(F.silu(x1).mul(x2));
    });
  }
}

class LayerScale extends Module implements UnaryModule {
  readonly gamma: Tensor;
  constructor(dim: number, initValues: number) {
    super();
    this.gamma = this.param('gamma', empty([dim]).fill_(initValues));
  }
  forward(x: Tensor): Tensor {
    return x.mul(this.gamma);
  }
}

/** x + ls(y): with LayerScale one addcmul (no scaled copy of y in between), else a plain add. */
function addScaled(x: Tensor, ls: UnaryModule, y: Tensor): Tensor {
  return ls instanceof LayerScale ? x.addcmul(y, ls.gamma) : x.add(ls.forward(y));
}

class Block extends Module {
  readonly norm1: LayerNorm;
  readonly attn: Attention;
  readonly ls1: UnaryModule;
  readonly norm2: LayerNorm;
  readonly mlp: UnaryModule;
  readonly ls2: UnaryModule;
  constructor(c: Dinov2Config) {
    super();
    const scale = (): UnaryModule => (c.initValues ? new LayerScale(c.embedDim, c.initValues) : new Identity());
    this.norm1 = this.module('norm1', new LayerNorm(c.embedDim, c.layerNormEps));
    this.attn = this.module('attn', new Attention(c.embedDim, c.numHeads, c.qkvBias));
    this.ls1 = this.module('ls1', scale());
    this.norm2 = this.module('norm2', new LayerNorm(c.embedDim, c.layerNormEps));
    const hidden = Math.floor(c.embedDim * c.mlpRatio);
    this.mlp = this.module('mlp', c.ffn === 'swiglu' ? new SwiGLUFFN(c.embedDim, hidden) : new Mlp(c.embedDim, hidden));
    this.ls2 = this.module('ls2', scale());
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const h = addScaled(x, this.ls1, this.attn.forward(this.norm1.forward(x)));
      return addScaled(h, this.ls2, this.mlp.forward(this.norm2.forward(h)));
    });
  }
  /**
   * The block's output for the first token only (B, 1, D). In the last block, when only [cls] is read, this skips
   * the queries, projections and MLP of every other token: 10/12 of that block's GEMM work.
   */
  forwardFirst(x: Tensor): Tensor {
    return tidy(() => {
      const h = addScaled(x.slice(1, 0, 1), this.ls1, this.attn.forwardFirst(this.norm1.forward(x)));
      return addScaled(h, this.ls2, this.mlp.forward(this.norm2.forward(h)));
    });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------------------------------------------

export class DinoVisionTransformer extends Module {
  readonly config: Dinov2Config;
  readonly patchEmbed: PatchEmbed;
  readonly clsToken: Tensor; // (1, 1, D)
  readonly posEmbed: Tensor; // (1, 1+M², D)
  readonly registerTokens: Tensor | null; // (1, R, D)
  readonly blocks: ModuleList<Block>;
  readonly norm: LayerNorm;
  readonly maskToken: Tensor; // (1, D)

  constructor(config: Dinov2Config) {
    super();
    const c = (this.config = { ...config });
    const grid = Math.floor(c.imgSize / c.patchSize);
    this.patchEmbed = this.module('patch_embed', new PatchEmbed(c.patchSize, c.inChans, c.embedDim));
    this.clsToken = this.param('cls_token', zeros([1, 1, c.embedDim]));
    this.posEmbed = this.param('pos_embed', zeros([1, grid * grid + 1, c.embedDim]));
    this.registerTokens = c.numRegisterTokens
      ? this.param('register_tokens', zeros([1, c.numRegisterTokens, c.embedDim]))
      : null;
    this.blocks = this.module('blocks', new ModuleList(Array.from({ length: c.depth }, () => new Block(c))));
    this.norm = this.module('norm', new LayerNorm(c.embedDim, c.layerNormEps));
    this.maskToken = this.param('mask_token', zeros([1, c.embedDim]));
  }

  /** The reference initialisation (timm ViT init): for training from scratch, e.g. the SSL stage. */
  initWeights(g?: GeneratorLike): this {
    init.truncNormal_(this.posEmbed, 0, 0.02, -2, 2, g);
    init.normal_(this.clsToken, 0, 1e-6, g);
    if (this.registerTokens) init.normal_(this.registerTokens, 0, 1e-6, g);
    for (const [, m] of this.namedModules()) {
      if (m instanceof Linear) {
        init.truncNormal_(m.weight, 0, 0.02, -2, 2, g);
        if (m.bias) init.zeros_(m.bias);
      }
    }
    return this;
  }

  /**
   * Position embeddings for an H×W input: the stored grid resized by bicubic interpolation exactly as the
   * reference does it (register models: antialias + output size; classic: scale factor (h0 + 0.1)/M).
   */
  interpolatePosEncoding(numTokens: number, H: number, W: number): Tensor {
    const c = this.config;
    const N = this.posEmbed.shape[1]! - 1;
    if (numTokens - 1 === N && H === W) return this.posEmbed;
    return tidy(() => {
      const pos = this.posEmbed.float();
      const clsPos = pos.select(1, 0); // (1, D)
      const M = Math.floor(Math.sqrt(N));
      if (M * M !== N) throw new Error(`DINOv2: pos_embed holds ${N} patch positions, not a square grid`);
      const [h0, w0] = [Math.floor(H / c.patchSize), Math.floor(W / c.patchSize)];
      const grid = pos.slice(1, 1).reshape(1, M, M, c.embedDim).permute(0, 3, 1, 2); // (1, D, M, M)
      const resized = c.interpolateOffset
        ? F.interpolate(grid, {
            scaleFactor: [(h0 + c.interpolateOffset) / M, (w0 + c.interpolateOffset) / M],
            mode: 'bicubic',
            antialias: c.interpolateAntialias,
          })
        : F.interpolate(grid, { size: [h0, w0], mode: 'bicubic', antialias: c.interpolateAntialias });
      const [rh, rw] = resized.shape.slice(2);
      if (rh !== h0 || rw !== w0)
        throw new Error(`DINOv2: position-embedding resize gave ${rh}×${rw}, expected ${h0}×${w0}`);
      const patchPos = resized.permute(0, 2, 3, 1).reshape(1, h0 * w0, c.embedDim); // (1, h0·w0, D)
      return cat([clsPos.unsqueeze(0), patchPos], 1).to(this.posEmbed.dtype); // (1, 1+h0·w0, D)
    });
  }

  /** Patch tokens plus their position embeddings (B, N, D): the part of the input that does not involve [cls]. */
  embedPatches(x: Tensor, o: { masks?: Tensor } = {}): Tensor {
    const [, , H, W] = x.shape as [number, number, number, number];
    return tidy(() => {
      let t = this.patchEmbed.forward(x); // (B, N, D)
      if (o.masks) t = where(o.masks.unsqueeze(-1), this.maskToken.to(t.dtype).unsqueeze(0), t);
      return t.add(this.interpolatePosEncoding(t.shape[1]! + 1, H, W).slice(1, 1));
    });
  }

  /**
   * Tokens [cls, registers..., patches...] with position embeddings (registers carry none). `clsToken` replaces
   * the model's own [cls] embedding (RepTok runs its frozen target through the same backbone this way).
   */
  prepareTokens(x: Tensor, o: ForwardOptions = {}): Tensor {
    return tidy(() => {
      const patches = o.embedded ?? this.embedPatches(x, o); // (B, N, D)
      const B = patches.shape[0]!;
      // (B, 1, D); [cls] keeps its position at any size
      const cls = (o.clsToken ?? this.clsToken).add(this.posEmbed.slice(1, 0, 1)).expand(B, -1, -1);
      // (B, 1+R+N, D)
      return cat(this.registerTokens ? [cls, this.registerTokens.expand(B, -1, -1), patches] : [cls, patches], 1);
    });
  }

  /** The reference's forward_features: normalised cls, register and patch tokens, and the pre-norm tokens. */
  forwardFeatures(x: Tensor, o: ForwardOptions = {}): Dinov2Features {
    const R = this.config.numRegisterTokens;
    return tidy(() => {
      let h = this.prepareTokens(x, o);
      for (const blk of this.blocks) h = blk.forward(h);
      const n = this.norm.forward(h); // (B, 1+R+N, D)
      return {
        xNormClstoken: n.select(1, 0),
        xNormRegtokens: n.slice(1, 1, R + 1),
        xNormPatchtokens: n.slice(1, R + 1),
        xPrenorm: h,
      };
    });
  }

  /** The [cls] output after the final LayerNorm (the RepTok token); the last block runs for [cls] alone. */
  forward(x: Tensor, o: ForwardOptions = {}): Tensor {
    return tidy(() => {
      let h = this.prepareTokens(x, o);
      const blocks = [...this.blocks];
      const last = blocks.pop();
      for (const blk of blocks) h = blk.forward(h);
      return this.norm.forward(last ? last.forwardFirst(h) : h.slice(1, 0, 1)).squeeze(1); // (B, D)
    });
  }

  /**
   * Outputs of chosen blocks (the last `n`, or the listed indices): patch tokens, optionally normalised, reshaped
   * to (B, D, h, w), and paired with their class tokens (get_intermediate_layers).
   */
  getIntermediateLayers(
    x: Tensor,
    n: number | number[] = 1,
    o: { reshape?: boolean; returnClassToken?: boolean; norm?: boolean } = {},
  ): { patches: Tensor; cls: Tensor }[] {
    const total = this.blocks.length;
    const take = new Set(typeof n === 'number' ? Array.from({ length: n }, (_, i) => total - n + i) : n);
    const R = this.config.numRegisterTokens;
    const [B, , H, W] = x.shape as [number, number, number, number];
    return tidy(() => {
      const outs: Tensor[] = [];
      let h = this.prepareTokens(x);
      [...this.blocks].forEach((blk, i) => {
        h = blk.forward(h);
        if (take.has(i)) outs.push(h);
      });
      if (outs.length !== take.size)
        throw new RangeError(`getIntermediateLayers: asked for blocks ${[...take].join(', ')} of ${total}`);
      return outs.map((out) => {
        const y = (o.norm ?? true) ? this.norm.forward(out) : out;
        let patches = y.slice(1, 1 + R);
        if (o.reshape)
          patches = patches
            .reshape(B, Math.floor(H / this.config.patchSize), Math.floor(W / this.config.patchSize), -1)
            .permute(0, 3, 1, 2)
            .contiguous();
        return { patches, cls: y.select(1, 0) };
      });
    });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Presets: the eight released models (torch hub names), all at img 518 / patch 14 with LayerScale 1.0
// ---------------------------------------------------------------------------------------------------------------

const RELEASED = {
  imgSize: 518,
  patchSize: 14,
  inChans: 3,
  mlpRatio: 4,
  qkvBias: true,
  initValues: 1.0,
  layerNormEps: 1e-6,
} as const;
const CLASSIC = { numRegisterTokens: 0, interpolateAntialias: false, interpolateOffset: 0.1 } as const;
const REGISTERS = { numRegisterTokens: 4, interpolateAntialias: true, interpolateOffset: 0 } as const;
const S = { embedDim: 384, depth: 12, numHeads: 6, ffn: 'mlp' } as const;
const B = { embedDim: 768, depth: 12, numHeads: 12, ffn: 'mlp' } as const;
const L = { embedDim: 1024, depth: 24, numHeads: 16, ffn: 'mlp' } as const;
const G = { embedDim: 1536, depth: 40, numHeads: 24, ffn: 'swiglu' } as const;

export const DINOV2_PRESETS = {
  dinov2_vits14: { ...RELEASED, ...S, ...CLASSIC },
  dinov2_vitb14: { ...RELEASED, ...B, ...CLASSIC },
  dinov2_vitl14: { ...RELEASED, ...L, ...CLASSIC },
  dinov2_vitg14: { ...RELEASED, ...G, ...CLASSIC },
  dinov2_vits14_reg: { ...RELEASED, ...S, ...REGISTERS },
  dinov2_vitb14_reg: { ...RELEASED, ...B, ...REGISTERS },
  dinov2_vitl14_reg: { ...RELEASED, ...L, ...REGISTERS },
  dinov2_vitg14_reg: { ...RELEASED, ...G, ...REGISTERS },
} satisfies Record<string, Dinov2Config>;

/**
 * A small DINOv2-style ViT (the size our SSL stage trains on two CPU cores) for 28×28 / 32×32 images: patch 4
 * unless set, width 128, 4 blocks of 4 heads, 4 registers.
 */
export function smallVit(
  imgSize: number,
  o: { patchSize?: number; embedDim?: number; depth?: number; numHeads?: number } = {},
): Dinov2Config {
  return {
    imgSize,
    patchSize: o.patchSize ?? 4,
    inChans: 3,
    embedDim: o.embedDim ?? 128,
    depth: o.depth ?? 4,
    numHeads: o.numHeads ?? 4,
    mlpRatio: 4,
    ffn: 'mlp',
    qkvBias: true,
    initValues: 1.0,
    numRegisterTokens: 4,
    interpolateAntialias: true,
    interpolateOffset: 0,
    layerNormEps: 1e-6,
  };
}

export type Dinov2Preset = keyof typeof DINOV2_PRESETS;

/** A DINOv2 of a released architecture (random weights until loaded), with optional overrides. */
export function dinov2(preset: Dinov2Preset, overrides: Partial<Dinov2Config> = {}): DinoVisionTransformer {
  const base = DINOV2_PRESETS[preset];
  if (!base)
    throw new Error(`unknown DINOv2 preset '${preset}'; choose one of ${Object.keys(DINOV2_PRESETS).join(', ')}`);
  return noGrad(() => new DinoVisionTransformer({ ...base, ...overrides }));
}
