// AutoencoderKL — the Stable Diffusion VAE (Rombach et al., "High-Resolution Image Synthesis with Latent Diffusion
// Models", 2022), in diffusers' layout so `stabilityai/sd-vae-ft-mse` (and any diffusers AutoencoderKL) loads as is.
// Reference: huggingface/diffusers models/autoencoders/{autoencoder_kl,vae}.py, resnet.py, attention_processor.py.
import { F, Tensor, cat, noGrad, randnLike, tensor, tidy, type GeneratorLike } from '../engine/index.ts';
import { Conv2d, GroupNorm, Linear, Module, ModuleList } from '../nn/index.ts';

export interface VaeConfig {
  inChannels: number;
  outChannels: number;
  latentChannels: number;
  blockOutChannels: number[];
  layersPerBlock: number;
  normNumGroups: number;
  /** Latents are multiplied by this before the flow and divided by it before decoding (0.18215 for SD). */
  scalingFactor: number;
  /** Tile size in pixels for tiled decoding (diffusers: sample_size). */
  sampleSize: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Blocks
// ---------------------------------------------------------------------------------------------------------------

class ResnetBlock2D extends Module {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly norm2: GroupNorm;
  readonly conv2: Conv2d;
  readonly convShortcut: Conv2d | null;
  constructor(inC: number, outC: number, groups: number) {
    super();
    this.norm1 = this.module('norm1', new GroupNorm(groups, inC, 1e-6));
    this.conv1 = this.module('conv1', new Conv2d(inC, outC, 3, { padding: 1 }));
    this.norm2 = this.module('norm2', new GroupNorm(groups, outC, 1e-6));
    this.conv2 = this.module('conv2', new Conv2d(outC, outC, 3, { padding: 1 }));
    this.convShortcut = inC !== outC ? this.module('conv_shortcut', new Conv2d(inC, outC, 1)) : null;
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      let h = this.conv1.forward(F.silu(this.norm1.forward(x)));
      h = this.conv2.forward(F.silu(this.norm2.forward(h)));
      return (this.convShortcut ? this.convShortcut.forward(x) : x).add(h);
    });
  }
}

/** Single-head self-attention over all positions (diffusers' Attention with group norm and a residual). */
class AttentionBlock extends Module {
  readonly groupNorm: GroupNorm;
  readonly toQ: Linear;
  readonly toK: Linear;
  readonly toV: Linear;
  readonly toOut: ModuleList<Linear>;
  constructor(channels: number, groups: number) {
    super();
    this.groupNorm = this.module('group_norm', new GroupNorm(groups, channels, 1e-6));
    this.toQ = this.module('to_q', new Linear(channels, channels));
    this.toK = this.module('to_k', new Linear(channels, channels));
    this.toV = this.module('to_v', new Linear(channels, channels));
    this.toOut = this.module('to_out', new ModuleList([new Linear(channels, channels)]));
  }
  forward(x: Tensor): Tensor {
    const [B, C, H, W] = x.shape as [number, number, number, number];
    return tidy(() => {
      const h = this.groupNorm
        .forward(x)
        .reshape(B, C, H * W)
        .transpose(1, 2); // (B, HW, C)
      // (B, HW, C)
      const o = F.scaledDotProductAttention(this.toQ.forward(h), this.toK.forward(h), this.toV.forward(h));
      return this.toOut.at(0).forward(o).transpose(1, 2).reshape(B, C, H, W).add(x);
    });
  }
}

class MidBlock extends Module {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly attentions: ModuleList<AttentionBlock>;
  constructor(channels: number, groups: number) {
    super();
    this.resnets = this.module(
      'resnets',
      new ModuleList([new ResnetBlock2D(channels, channels, groups), new ResnetBlock2D(channels, channels, groups)]),
    );
    this.attentions = this.module('attentions', new ModuleList([new AttentionBlock(channels, groups)]));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.resnets.at(1).forward(this.attentions.at(0).forward(this.resnets.at(0).forward(x))));
  }
}

/** Stride-2 3×3 convolution after padding right and bottom by one (diffusers' Downsample2D with padding=0). */
class Downsample extends Module {
  readonly conv: Conv2d;
  constructor(channels: number) {
    super();
    this.conv = this.module('conv', new Conv2d(channels, channels, 3, { stride: 2 }));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.conv.forward(F.pad(x, [0, 1, 0, 1])));
  }
}

class Upsample extends Module {
  readonly conv: Conv2d;
  constructor(channels: number) {
    super();
    this.conv = this.module('conv', new Conv2d(channels, channels, 3, { padding: 1 }));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.conv.forward(F.interpolate(x, { scaleFactor: 2, mode: 'nearest' })));
  }
}

class DownBlock extends Module {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly downsamplers: ModuleList<Downsample> | null;
  constructor(inC: number, outC: number, layers: number, groups: number, downsample: boolean) {
    super();
    this.resnets = this.module(
      'resnets',
      new ModuleList(Array.from({ length: layers }, (_, i) => new ResnetBlock2D(i === 0 ? inC : outC, outC, groups))),
    );
    this.downsamplers = downsample ? this.module('downsamplers', new ModuleList([new Downsample(outC)])) : null;
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      let h = x;
      for (const r of this.resnets) h = r.forward(h);
      return this.downsamplers ? this.downsamplers.at(0).forward(h) : h;
    });
  }
}

class UpBlock extends Module {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly upsamplers: ModuleList<Upsample> | null;
  constructor(inC: number, outC: number, layers: number, groups: number, upsample: boolean) {
    super();
    this.resnets = this.module(
      'resnets',
      new ModuleList(Array.from({ length: layers }, (_, i) => new ResnetBlock2D(i === 0 ? inC : outC, outC, groups))),
    );
    this.upsamplers = upsample ? this.module('upsamplers', new ModuleList([new Upsample(outC)])) : null;
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      let h = x;
      for (const r of this.resnets) h = r.forward(h);
      return this.upsamplers ? this.upsamplers.at(0).forward(h) : h;
    });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Encoder, decoder, autoencoder
// ---------------------------------------------------------------------------------------------------------------

class Encoder extends Module {
  readonly convIn: Conv2d;
  readonly downBlocks: ModuleList<DownBlock>;
  readonly midBlock: MidBlock;
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;
  constructor(c: VaeConfig) {
    super();
    const ch = c.blockOutChannels;
    this.convIn = this.module('conv_in', new Conv2d(c.inChannels, ch[0]!, 3, { padding: 1 }));
    this.downBlocks = this.module(
      'down_blocks',
      new ModuleList(
        ch.map(
          (out, i) =>
            new DownBlock(i === 0 ? ch[0]! : ch[i - 1]!, out, c.layersPerBlock, c.normNumGroups, i < ch.length - 1),
        ),
      ),
    );
    this.midBlock = this.module('mid_block', new MidBlock(ch.at(-1)!, c.normNumGroups));
    this.convNormOut = this.module('conv_norm_out', new GroupNorm(c.normNumGroups, ch.at(-1)!, 1e-6));
    this.convOut = this.module('conv_out', new Conv2d(ch.at(-1)!, 2 * c.latentChannels, 3, { padding: 1 }));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      let h = this.convIn.forward(x);
      for (const b of this.downBlocks) h = b.forward(h);
      h = this.midBlock.forward(h);
      return this.convOut.forward(F.silu(this.convNormOut.forward(h))); // (B, 2·latent, H/f, W/f)
    });
  }
}

class Decoder extends Module {
  readonly convIn: Conv2d;
  readonly midBlock: MidBlock;
  readonly upBlocks: ModuleList<UpBlock>;
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;
  constructor(c: VaeConfig) {
    super();
    const rev = [...c.blockOutChannels].reverse();
    this.convIn = this.module('conv_in', new Conv2d(c.latentChannels, rev[0]!, 3, { padding: 1 }));
    this.midBlock = this.module('mid_block', new MidBlock(rev[0]!, c.normNumGroups));
    this.upBlocks = this.module(
      'up_blocks',
      new ModuleList(
        rev.map(
          (out, i) =>
            new UpBlock(
              i === 0 ? rev[0]! : rev[i - 1]!,
              out,
              c.layersPerBlock + 1,
              c.normNumGroups,
              i < rev.length - 1,
            ),
        ),
      ),
    );
    this.convNormOut = this.module('conv_norm_out', new GroupNorm(c.normNumGroups, c.blockOutChannels[0]!, 1e-6));
    this.convOut = this.module('conv_out', new Conv2d(c.blockOutChannels[0]!, c.outChannels, 3, { padding: 1 }));
  }
  forward(z: Tensor): Tensor {
    return tidy(() => {
      let h = this.midBlock.forward(this.convIn.forward(z));
      for (const b of this.upBlocks) h = b.forward(h);
      return this.convOut.forward(F.silu(this.convNormOut.forward(h)));
    });
  }
}

/** The posterior q(z|x) = N(mean, exp(logvar)) with logvar clamped to [−30, 20]. */
export interface Posterior {
  mean: Tensor; // (B, C, h, w)
  logvar: Tensor; // (B, C, h, w)
}

export class AutoencoderKL extends Module {
  readonly config: VaeConfig;
  readonly encoder: Encoder;
  readonly decoder: Decoder;
  readonly quantConv: Conv2d;
  readonly postQuantConv: Conv2d;

  constructor(config: VaeConfig) {
    super();
    this.config = { ...config };
    this.encoder = this.module('encoder', new Encoder(config));
    this.decoder = this.module('decoder', new Decoder(config));
    this.quantConv = this.module('quant_conv', new Conv2d(2 * config.latentChannels, 2 * config.latentChannels, 1));
    this.postQuantConv = this.module('post_quant_conv', new Conv2d(config.latentChannels, config.latentChannels, 1));
  }

  /** Downsampling factor between pixels and latents (8 for SD). */
  get factor(): number {
    return 2 ** (this.config.blockOutChannels.length - 1);
  }

  /** Images (B, 3, H, W) in [-1, 1] -> posterior over raw (unscaled) latents. */
  encode(x: Tensor): Posterior {
    return tidy(() => {
      const [mean, logvar] = this.quantConv.forward(this.encoder.forward(x)).chunk(2, 1) as [Tensor, Tensor];
      return { mean, logvar: logvar.clamp(-30, 20) };
    });
  }

  /** A posterior sample mean + exp(logvar / 2)·ε (what the tokenizer trains on). */
  static sample(p: Posterior, generator?: GeneratorLike): Tensor {
    return tidy(() => p.mean.add(p.logvar.mul(0.5).exp().mul(randnLike(p.mean, { generator }))));
  }

  /** Raw latents (B, C, h, w) -> images (B, 3, h·f, w·f). */
  decode(z: Tensor): Tensor {
    return tidy(() => this.decoder.forward(this.postQuantConv.forward(z)));
  }

  /**
   * Decodes large latents tile by tile (diffusers' tiled_decode): tiles of `sampleSize / f` latents overlapping by
   * `overlap`, each decoded alone, blended linearly across the overlap; memory stays bounded for big images.
   */
  decodeTiled(z: Tensor, o: { overlap?: number } = {}): Tensor {
    const overlap = o.overlap ?? 0.25;
    const tile = Math.floor(this.config.sampleSize / this.factor);
    const stride = Math.floor(tile * (1 - overlap));
    const blendExtent = Math.floor(this.config.sampleSize * overlap);
    const limit = this.config.sampleSize - blendExtent;
    const [, , h, w] = z.shape as [number, number, number, number];
    // b's first n rows (dim 2) or columns (dim 3) fade in from a's last n: a·(1 − y/n) + b·(y/n)
    const blend = (a: Tensor, b: Tensor, dim: 2 | 3): Tensor => {
      const n = Math.min(a.shape[dim]!, b.shape[dim]!, blendExtent);
      if (n === 0) return b;
      const ramp = tensor(Array.from({ length: n }, (_, y) => y / n)).reshape(dim === 2 ? [1, 1, n, 1] : [1, 1, 1, n]);
      const head = a
        .narrow(dim, a.shape[dim]! - n, n)
        .mul(ramp.rsub(1))
        .add(b.narrow(dim, 0, n).mul(ramp));
      return cat([head, b.narrow(dim, n, b.shape[dim]! - n)], dim);
    };
    return noGrad(() =>
      tidy(() => {
        const rows: Tensor[][] = [];
        for (let i = 0; i < h; i += stride) {
          const row: Tensor[] = [];
          for (let j = 0; j < w; j += stride) row.push(this.decode(z.slice(2, i, i + tile).slice(3, j, j + tile)));
          rows.push(row);
        }
        const out = rows.map((row, i) => {
          row.forEach((t, j) => {
            if (i > 0) t = blend(rows[i - 1]![j]!, t, 2);
            if (j > 0) t = blend(row[j - 1]!, t, 3);
            row[j] = t;
          });
          return cat(
            row.map((t) => t.slice(2, 0, limit).slice(3, 0, limit)),
            3,
          );
        });
        return cat(out, 2);
      }),
    );
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Presets
// ---------------------------------------------------------------------------------------------------------------

/** stabilityai/sd-vae-ft-mse (and the SD 1.x/2.x VAEs): 3 -> 4 channels, factor 8. */
export const SD_VAE: VaeConfig = {
  inChannels: 3,
  outChannels: 3,
  latentChannels: 4,
  blockOutChannels: [128, 256, 512, 512],
  layersPerBlock: 2,
  normNumGroups: 32,
  scalingFactor: 0.18215,
  sampleSize: 256,
};

/** Maps a diffusers `config.json` of an AutoencoderKL to ours. */
export function vaeConfigFromDiffusers(d: Record<string, any>): VaeConfig {
  for (const t of d.down_block_types ?? [])
    if (t !== 'DownEncoderBlock2D') throw new Error(`VAE config: unsupported down block ${t}`);
  for (const t of d.up_block_types ?? [])
    if (t !== 'UpDecoderBlock2D') throw new Error(`VAE config: unsupported up block ${t}`);
  if ((d.act_fn ?? 'silu') !== 'silu') throw new Error(`VAE config: unsupported activation ${d.act_fn}`);
  return {
    inChannels: d.in_channels ?? 3,
    outChannels: d.out_channels ?? 3,
    latentChannels: d.latent_channels ?? 4,
    blockOutChannels: d.block_out_channels ?? [64],
    layersPerBlock: d.layers_per_block ?? 1,
    normNumGroups: d.norm_num_groups ?? 32,
    scalingFactor: d.scaling_factor ?? 0.18215,
    sampleSize: Array.isArray(d.sample_size) ? d.sample_size[0] : (d.sample_size ?? 32),
  };
}
