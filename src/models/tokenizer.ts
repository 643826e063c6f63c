// RepTok's tokenizer (stage A): image -> one continuous token -> image.
// Gui et al., "Adapting Self-Supervised Representations as a Latent Space for Efficient Generation" (2025).
// Reference: CompVis/RepTok RepTokLatentRF2D + RepTokDecoderWrapper. The module tree and its state-dict keys are
// the reference monolith's (`encoder.dino.*`, `backbone.*`, `time_emb.weight`, `time_in_proj.weight`,
// `mapping.*`, `ae.ae.*`), so released checkpoints load without a conversion table.
//
//   encode:  image -> [RepTok preprocessing] -> ViT (only its input [cls] embedding trains) -> token (B, D)
//   decode:  noise --ODE, velocity = decoder(z, t, adapt(token))--> grid -> (SD-VAE decoder) -> image
//   loss:    flow matching on the grid + λ·(1 − cos(token, frozen target token))
import { Tensor, full, noGrad, randn, tidy, zeros, type GeneratorLike, type StateDict } from '../engine/index.ts';
import { FourierFeatures, Linear, Module } from '../nn/index.ts';
import { decoderPath, perSampleMse, sampleTime, type TimeSampler } from '../flow/paths.ts';
import { solve, type SolveOptions } from '../flow/ode.ts';
import { DINOV2_PRESETS, smallVit, type Dinov2Config } from './dinov2.ts';
import { DecoderTransformer, type DecoderConfig } from './decoder.ts';
import { MappingNetwork, type MappingConfig } from './time-conditioning.ts';
import { EncoderHolder, TokenEncoder, type TrainableSpec } from './token-encoder.ts';
import { AutoencoderKL, SD_VAE, upgradeVaeAttentionKeys, type VaeConfig } from './vae.ts';
import {
  loadModelFile,
  writeModelFile,
  type DataInfo,
  type ModelDescription,
  type ModelSource,
  type SaveOptions,
} from './model-file.ts';

export interface TokenizerConfig {
  /** The self-supervised ViT whose [cls] output is the token. */
  encoder: Dinov2Config;
  /** Side length the encoder sees (images are cropped/pooled/resized to it): 224 in the paper. */
  encoderInputSize: number;
  trainable: TrainableSpec;
  /** The reference's `nr_new_reg` (checkpoint compatibility only). */
  newRegisters: number;
  decoder: Omit<DecoderConfig, 'channels' | 'condWidth'>;
  mapping: MappingConfig;
  /** 'latent': the flow runs on SD-VAE latents (the paper); 'pixel': directly on pixels (small images). */
  space: 'latent' | 'pixel';
  /** Image size [H, W] the decoder produces. */
  imageSize: [number, number];
  /** 3 (RGB) or 1 (gray; the encoder then sees the gray channel three times). */
  imageChannels: number;
  vae: VaeConfig | null;
  /** λ of the cosine loss (not published; 1.0 by default). */
  cosWeight: number;
  timeSampler: TimeSampler;
  /**
   * Tokens are the encoder's [cls] output divided by this, and decode multiplies them back: the released RepTok
   * checkpoint's first-stage `scale_factor`, so that its generator's tokens decode as they are. 1 when absent.
   */
  tokenScale?: number;
}

export interface TokenizerLoss {
  total: Tensor; // () rf.mean() + λ·cos.mean()
  rf: Tensor; // (B) flow-matching loss per sample
  cos: Tensor; // (B) 1 − cos(token, target token)
  token: Tensor; // (B, D)
  t: Tensor; // (B)
  zt: Tensor; // (B, C, h, w)
  condNorm: Tensor; // (B, mapping width) time conditioning
  condTokens: Tensor; // (B, 1, W) adapted token
  condPos: Tensor; // (B, 1, 2) the adapted token's position on the decoder's RoPE grid
  vPred: Tensor; // (B, C, h, w)
}

export interface DecodeOptions extends SolveOptions {
  /** Starting noise (B, C, h, w); else drawn from `generator` (or the global generator). */
  noise?: Tensor;
  generator?: GeneratorLike;
}

export interface DecodeResult {
  images: Tensor; // (B, imageChannels, H, W) in [-1, 1] (clamped)
  grid: Tensor; // the ODE solution (latents or raw pixels)
  nfe: number;
}

/** `ae`: the reference's AutoencoderKL wrapper, holding the diffusers model as `ae.ae` (no logic of its own). */
class VaeHolder extends Module {
  constructor(readonly ae: AutoencoderKL) {
    super();
    this.module('ae', ae);
  }
}

export class RepTokTokenizer extends Module {
  readonly config: TokenizerConfig;
  /** Image -> token, and token -> decoder conditioning (`encoder.dino.*`). */
  readonly tokenEncoder: TokenEncoder;
  /** The flow-matching decoder transformer (`backbone.*`). */
  readonly decoder: DecoderTransformer;
  readonly timeEmb: FourierFeatures;
  readonly timeInProj: Linear;
  readonly mapping: MappingNetwork;
  /** The frozen SD-VAE of latent mode (`ae.ae.*`); null in pixel mode. */
  readonly vae: AutoencoderKL | null;

  constructor(config: TokenizerConfig) {
    super();
    this.config = structuredClone(config);
    const c = this.config;
    if (c.space === 'latent' && !c.vae) throw new Error("tokenizer config: space 'latent' needs a VAE config");
    const [C] = this.gridShape;
    this.tokenEncoder = new TokenEncoder(c.encoder, c.encoderInputSize, c.decoder.width, c.trainable, c.newRegisters);
    this.module('encoder', new EncoderHolder(this.tokenEncoder));
    this.decoder = this.module(
      'backbone',
      new DecoderTransformer({ ...c.decoder, channels: C, condWidth: c.mapping.width }),
    );
    this.timeEmb = this.module('time_emb', new FourierFeatures(1, c.mapping.width));
    this.timeInProj = this.module('time_in_proj', new Linear(c.mapping.width, c.mapping.width, { bias: false }));
    this.mapping = this.module('mapping', new MappingNetwork(c.mapping));
    this.vae = c.space === 'latent' ? this.module('ae', new VaeHolder(new AutoencoderKL(c.vae!))).ae : null;
    this.vae?.requiresGrad_(false).eval();
  }

  /** Width D of a token (the encoder ViT's width). */
  get tokenDim(): number {
    return this.config.encoder.embedDim;
  }

  /** Shape (C, h, w) of the grid the flow runs on. */
  get gridShape(): [number, number, number] {
    const [H, W] = this.config.imageSize;
    if (this.config.space === 'pixel') return [this.config.imageChannels, H, W];
    const vae = this.config.vae!;
    const f = 2 ** (vae.blockOutChannels.length - 1);
    return [vae.latentChannels, H / f, W / f];
  }

  override train(mode = true): this {
    super.train(mode);
    this.tokenEncoder.train(mode);
    this.vae?.eval();
    return this;
  }

  // ---- encoder side ----------------------------------------------------------------------------------------------

  #rgb(images: Tensor): Tensor {
    const C = images.shape[1];
    if (C === 3) return images;
    if (C === 1) return images.expand(-1, 3, -1, -1);
    throw new RangeError(`images must have 1 or 3 channels, got shape [${images.shape.join(', ')}]`);
  }

  /** Images (B, C, H, W) in [-1, 1] -> tokens (B, D). */
  encode(images: Tensor): Tensor {
    return tidy(() => {
      const token = this.tokenEncoder.encode(this.#rgb(images)).token;
      return this.#tokenScale === 1 ? token : token.div(this.#tokenScale);
    });
  }

  /** Tokens (B, D) -> the decoder's conditioning tokens (B, 1, W) that `velocity` takes. */
  condition(tokens: Tensor): Tensor {
    return tidy(() => this.tokenEncoder.adapt(this.#tokenScale === 1 ? tokens : tokens.mul(this.#tokenScale)));
  }

  get #tokenScale(): number {
    return this.config.tokenScale ?? 1;
  }

  // ---- decoder side ----------------------------------------------------------------------------------------------

  /** Time t (B) -> conditioning (B, mapping width): Fourier features -> linear -> mapping network. */
  timeCondition(t: Tensor): Tensor {
    return tidy(() => this.mapping.forward(this.timeInProj.forward(this.timeEmb.forward(t.unsqueeze(-1)))));
  }

  /** The decoder's velocity at grid z (B, C, h, w), time t (B), for adapted tokens (B, 1, W). */
  velocity(z: Tensor, t: Tensor, condTokens: Tensor): Tensor {
    return tidy(() => {
      return this.decoder.forward(z, this.timeCondition(t), condTokens, this.tokenPositions(z));
    });
  }

  /** Where the adapted token sits on the decoder's RoPE grid, for a grid batch z: (B, 1, 2), at (0, 0). */
  tokenPositions(z: Tensor): Tensor {
    return zeros([z.shape[0]!, 1, 2], { dtype: z.dtype, device: z.device });
  }

  /** Images -> the grid the flow runs on: scaled VAE posterior samples, or the pixels themselves. */
  toGrid(images: Tensor, generator?: GeneratorLike): Tensor {
    if (!this.vae) return images;
    return noGrad(() =>
      tidy(() =>
        AutoencoderKL.sample(this.vae!.encode(this.#rgb(images)), generator).mul(this.config.vae!.scalingFactor),
      ),
    );
  }

  /** Grid -> images in [-1, 1]. */
  fromGrid(z: Tensor): Tensor {
    return tidy(() => {
      const img = this.vae ? this.vae.decode(z.div(this.config.vae!.scalingFactor)) : z;
      return img.clamp(-1, 1);
    });
  }

  /**
   * Tokens (B, D) -> images: solve the flow ODE from noise (t = 1) to data (t = 0), then decode the grid.
   * The reference uses 50 Euler steps; Heun and adaptive Dormand–Prince trade evaluations for accuracy.
   */
  decode(tokens: Tensor, o: DecodeOptions = {}): DecodeResult {
    return noGrad(() =>
      tidy(() => {
        const B = tokens.shape[0]!;
        const noise = o.noise ?? randn([B, ...this.gridShape], { generator: o.generator, device: tokens.device });
        const cond = this.condition(tokens);
        const { z, nfe } = solve(
          (zt, t) => this.velocity(zt, full([B], t, { device: tokens.device }), cond),
          noise,
          ...decoderPath.span,
          o,
        );
        return { images: this.fromGrid(z), grid: z, nfe };
      }),
    );
  }

  // ---- training ------------------------------------------------------------------------------------------------

  /**
   * The stage-A objective for a batch of images (B, C, H, W) in [-1, 1]. `grid`, `noise` and `t` may be given
   * (tests, reproducible evaluation); otherwise they are drawn from `generator`.
   */
  loss(
    images: Tensor,
    o: { grid?: Tensor; noise?: Tensor; t?: Tensor; generator?: GeneratorLike } = {},
  ): TokenizerLoss {
    return tidy(() => {
      const B = images.shape[0]!;
      const x = o.grid ?? this.toGrid(images, o.generator);
      const t = o.t ?? sampleTime(B, this.config.timeSampler, o.generator, images.device);
      const noise = o.noise ?? randn(x.shape, { generator: o.generator, device: x.device });
      const zt = decoderPath.interpolate(x, noise, t);
      const { token, cos } = this.tokenEncoder.encode(this.#rgb(images), { withCosLoss: true });
      const condTokens = this.condition(token);
      const condNorm = this.timeCondition(t);
      const condPos = this.tokenPositions(zt);
      const vPred = this.decoder.forward(zt, condNorm, condTokens, condPos);
      const rf = perSampleMse(vPred, decoderPath.target(x, noise));
      const total = rf.mean().add(cos!.mean().mul(this.config.cosWeight));
      return { total, rf, cos: cos!, token, t, zt, condNorm, condTokens, condPos, vPred };
    });
  }

  /** Parameters that train: decoder, adapter, time mapping, and the chosen encoder parameters. */
  trainableParameters(): [string, Tensor][] {
    return [...this.namedParameters()].filter(([, p]) => p.requiresGrad);
  }

  // ---- checkpoints ---------------------------------------------------------------------------------------------

  /**
   * Loads a reference-layout state dict (a released RepTok checkpoint, or ours). A checkpoint that carries a full
   * frozen copy of the encoder (`encoder.dino.target_model.*`) loads into the shared-ViT target: the copy must
   * equal the encoder's frozen weights, and only its [cls] embedding is kept.
   */
  loadReferenceStateDict(sd: StateDict, o: { strict?: boolean; context?: string } = {}): void {
    const prefix = 'encoder.dino.target_model.';
    const input = new Map(upgradeVaeAttentionKeys(sd)); // the VAE under ae.ae.* may use diffusers' older names
    if (this.tokenEncoder.sharedTarget && [...input.keys()].some((k) => k.startsWith(`${prefix}blocks.`))) {
      noGrad(() => {
        for (const [k, v] of sd) {
          if (!k.startsWith(prefix) || k === `${prefix}cls_token`) continue;
          const twin = input.get(`encoder.dino.model.${k.slice(prefix.length)}`);
          if (twin && !tidy(() => twin.allclose(v, 0, 0))) {
            throw new Error(
              `${o.context ?? 'checkpoint'}: its frozen target differs from the encoder at '${k}', ` +
                'so encoder weights beyond [cls] were trained; build the tokenizer with that trainable set ' +
                "(e.g. trainable: 'last:N') to keep a separate target",
            );
          }
          input.delete(k);
        }
      });
    }
    this.loadStateDict(input, o);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Presets
// ---------------------------------------------------------------------------------------------------------------

const LOGIT_NORMAL: TimeSampler = { kind: 'logit-normal', loc: 0, scale: 1 };

/** The paper's model: DINOv2-B/14-reg at 224 px from 256×256 images, SD-VAE latents 4×32×32, decoder ≈571M. */
export function reptokXL(overrides: Partial<TokenizerConfig> = {}): TokenizerConfig {
  return {
    encoder: { ...DINOV2_PRESETS.dinov2_vitb14_reg },
    encoderInputSize: 224,
    trainable: 'cls',
    newRegisters: 2,
    decoder: { width: 1152, depth: 28, dHead: 72, ffExpand: 3, patchSize: [2, 2] },
    mapping: { width: 1024, depth: 2, dFF: 3072 },
    space: 'latent',
    imageSize: [256, 256],
    imageChannels: 3,
    vae: { ...SD_VAE },
    cosWeight: 1,
    timeSampler: LOGIT_NORMAL,
    ...overrides,
  };
}

/** The mid-size configuration of the benchmarks: DINOv2-S/14-reg at 112 px from 128×128, width 384, depth 6. */
export function reptokMid(overrides: Partial<TokenizerConfig> = {}): TokenizerConfig {
  return reptokXL({
    encoder: { ...DINOV2_PRESETS.dinov2_vits14_reg },
    encoderInputSize: 112,
    decoder: { width: 384, depth: 6, dHead: 64, ffExpand: 3, patchSize: [2, 2] },
    mapping: { width: 256, depth: 2, dFF: 768 },
    imageSize: [128, 128],
    ...overrides,
  });
}

/** Pixel-space tokenizer for small images (Fashion-MNIST 28×28 gray, emoji 32×32 RGB): no VAE, 4×4 patches. */
export function reptokPixel(size: 28 | 32, channels: 1 | 3, overrides: Partial<TokenizerConfig> = {}): TokenizerConfig {
  return {
    encoder: smallVit(size),
    encoderInputSize: size,
    trainable: 'cls',
    newRegisters: 2,
    decoder: { width: 256, depth: 4, dHead: 64, ffExpand: 3, patchSize: [4, 4] },
    mapping: { width: 128, depth: 1, dFF: 384 },
    space: 'pixel',
    imageSize: [size, size],
    imageChannels: channels,
    vae: null,
    cosWeight: 1,
    timeSampler: LOGIT_NORMAL,
    ...overrides,
  };
}

export const TOKENIZER_PRESETS = {
  'reptok-xl': () => reptokXL(),
  'reptok-mid': () => reptokMid(),
  'pixel-28-gray': () => reptokPixel(28, 1),
  'pixel-32-rgb': () => reptokPixel(32, 3),
} satisfies Record<string, () => TokenizerConfig>;

export type TokenizerPreset = keyof typeof TOKENIZER_PRESETS;

/** A tokenizer of a named preset (random weights until loaded). */
export function tokenizer(preset: TokenizerPreset, overrides: Partial<TokenizerConfig> = {}): RepTokTokenizer {
  const make = Object.hasOwn(TOKENIZER_PRESETS, preset) ? TOKENIZER_PRESETS[preset] : undefined;
  if (!make)
    throw new Error(`unknown tokenizer preset '${preset}'; choose one of ${Object.keys(TOKENIZER_PRESETS).join(', ')}`);
  return noGrad(() => new RepTokTokenizer({ ...make(), ...overrides }));
}

// ---------------------------------------------------------------------------------------------------------------
// Saved tokenizers
// ---------------------------------------------------------------------------------------------------------------

/** Writes the tokenizer as a self-describing model file (see model-file.ts); `loadTokenizer` reads it back. */
export function saveTokenizer(path: string, tok: RepTokTokenizer, o: SaveOptions = {}): void {
  const c = tok.config;
  const data: DataInfo = { imageSize: c.imageSize, channels: c.imageChannels, valueRange: [-1, 1], ...o.data };
  writeModelFile(path, 'tokenizer', c, o.weights ?? tok.stateDict(), { ...o, data });
}

/** A tokenizer saved by `saveTokenizer` (or trained by `reptok train tokenizer`), from its path or its bytes. */
export function loadTokenizer(source: ModelSource): RepTokTokenizer {
  return loadTokenizerFile(source).model;
}

/** `loadTokenizer` with the file's description (data, training, version). */
export function loadTokenizerFile(source: ModelSource): ModelDescription<TokenizerConfig> & { model: RepTokTokenizer } {
  return loadModelFile<TokenizerConfig, RepTokTokenizer>(
    source,
    'tokenizer',
    (d) => new RepTokTokenizer(d.config),
    (m, weights, context) => m.loadReferenceStateDict(weights, { context }),
  );
}
