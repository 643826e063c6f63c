// Text-to-image generation of RepTok tokens. The paper's text-to-image model cross-attends from the token generator
// to a frozen text encoder's hidden states; its code is not released, so this design is ours (docs/t2i.md):
//
//   sequence S = [token(s) + pos, time embedding, pooled text]           (B, n+2, dim)
//   depth × { S += TokenMix(LN S)   — an MLP across the sequence, as in the mixer
//             S += CrossAttn(LN S, text states, padding mask)   — output projection zero-initialised
//             S += ChannelMLP(LN S) }
//   velocity = Linear(LN S)[:, :n]
//
// Guidance uses the empty prompt as the null condition; training replaces captions by "" with probability
// `textDropoutProb`. The text encoder is either a frozen pretrained one (CLIP) or a small one that trains along.
import { F, Tensor, cat, rand, randn, tidy, type GeneratorLike } from '../engine/index.ts';
import { LayerNorm, Linear, Module, ModuleList, Sequential, TimestepEmbedder, init } from '../nn/index.ts';
import type { GuidableField } from '../flow/guidance.ts';
import { mixerBlock } from './generator.ts';
import type { TextEncoder, TextEncoding } from './text/text-encoder.ts';
import { SmallTextEncoder, type SmallTextConfig } from './text/small-text-encoder.ts';
import { WordTokenizer } from './text/word-tokenizer.ts';
import {
  loadModelFile,
  sourceName,
  writeModelFile,
  type ModelDescription,
  type ModelSource,
  type SaveOptions,
} from './model-file.ts';

export interface T2IConfig {
  tokenDim: number;
  nTokens: number;
  dim: number;
  depth: number;
  heads: number;
  /** Hidden widths of the token-mixing and channel MLPs, as in GeneratorConfig. */
  tokenMlpRatio: number;
  channelMlpRatio: number;
  /** Width of the text encoder's states. */
  textDim: number;
  textDropoutProb: number;
}

class CrossAttention extends Module {
  readonly norm: LayerNorm;
  readonly q: Linear;
  readonly kv: Linear;
  readonly out: Linear;
  constructor(
    dim: number,
    textDim: number,
    readonly heads: number,
  ) {
    super();
    this.norm = this.module('norm', new LayerNorm(dim));
    this.q = this.module('q', new Linear(dim, dim));
    this.kv = this.module('kv', new Linear(textDim, 2 * dim));
    this.out = this.module('out', new Linear(dim, dim));
    init.zeros_(this.out.weight);
    init.zeros_(this.out.bias!);
  }
  /** x (B, S, dim) attends to text (B, L, textDim) where mask (B, L) is true. */
  forward(x: Tensor, text: Tensor, mask: Tensor): Tensor {
    const [B, S, D] = x.shape as [number, number, number];
    const L = text.shape[1]!;
    const h = this.heads;
    return tidy(() => {
      const q = this.q
        .forward(this.norm.forward(x))
        .reshape(B, S, h, D / h)
        .transpose(1, 2); // (B, h, S, d)
      const [k, v] = this.kv
        .forward(text)
        .reshape(B, L, 2, h, D / h)
        .permute(2, 0, 3, 1, 4)
        .unbind(0) as [Tensor, Tensor]; // (B, h, L, d)
      const o = F.scaledDotProductAttention(q, k, v, { mask: mask.reshape(B, 1, 1, L) })
        .transpose(1, 2)
        .reshape(B, S, D);
      return x.add(this.out.forward(o));
    });
  }
}

class T2IBlock extends Module {
  readonly mix: Sequential; // the mixer's (token mixing, channel mixing) pair
  readonly cross: CrossAttention;
  constructor(c: T2IConfig) {
    super();
    this.mix = this.module('mix', mixerBlock(c.nTokens + 2, c.dim, c.tokenMlpRatio, c.channelMlpRatio, 0));
    this.cross = this.module('cross', new CrossAttention(c.dim, c.textDim, c.heads));
  }
  forward(x: Tensor, text: TextEncoding): Tensor {
    return tidy(() => {
      const tokenMixed = this.mix.at(0).forward(x);
      return this.mix.at(1).forward(this.cross.forward(tokenMixed, text.states, text.mask));
    });
  }
}

export class T2IGenerator extends Module {
  readonly config: T2IConfig;
  readonly posEmbed: Tensor; // (1, n, C)
  readonly projIn: Linear;
  readonly tEmbedder: TimestepEmbedder;
  readonly textProj: Linear;
  readonly blocks: ModuleList<T2IBlock>;
  readonly normOut: LayerNorm;
  readonly projOut: Linear;

  constructor(config: T2IConfig) {
    super();
    const c = (this.config = { ...config });
    this.posEmbed = this.param('pos_embed', randn([1, c.nTokens, c.tokenDim]).mul_(0.02));
    this.projIn = this.module('proj_in', new Linear(c.tokenDim, c.dim));
    this.tEmbedder = this.module('t_embedder', new TimestepEmbedder(c.dim));
    this.textProj = this.module('text_proj', new Linear(c.textDim, c.dim));
    this.blocks = this.module('blocks', new ModuleList(Array.from({ length: c.depth }, () => new T2IBlock(c))));
    this.normOut = this.module('norm_out', new LayerNorm(c.dim));
    this.projOut = this.module('proj_out', new Linear(c.dim, c.tokenDim));
  }

  /** Velocity for tokens x (B, n, C) at times t (B) given the text encoding of each sample. */
  forward(x: Tensor, t: Tensor, text: TextEncoding): Tensor {
    const n = this.config.nTokens;
    return tidy(() => {
      let s = cat(
        [
          this.projIn.forward(x.add(this.posEmbed)),
          this.tEmbedder.forward(t).unsqueeze(1),
          this.textProj.forward(text.pooled).unsqueeze(1),
        ],
        1,
      ); // (B, n+2, dim)
      for (const b of this.blocks) s = b.forward(s, text);
      return this.projOut.forward(this.normOut.forward(s.slice(1, 0, n)));
    });
  }
}

/** Concatenates two text encodings along the batch. */
export function catText(a: TextEncoding, b: TextEncoding): TextEncoding {
  return { states: cat([a.states, b.states]), mask: cat([a.mask, b.mask]), pooled: cat([a.pooled, b.pooled]) };
}

/**
 * The generator together with its text encoder. A trainable encoder is a registered child (`text_encoder.*` in
 * checkpoints); a frozen pretrained one is held outside the state dict (it is loaded from its own files).
 */
export class TextToImage extends Module {
  readonly generator: T2IGenerator;
  readonly textEncoder: TextEncoder;

  constructor(config: T2IConfig, textEncoder: TextEncoder) {
    super();
    if (textEncoder.dim !== config.textDim)
      throw new Error(
        `T2I config expects text states of width ${config.textDim}, the encoder gives ${textEncoder.dim}`,
      );
    this.generator = this.module('generator', new T2IGenerator(config));
    this.textEncoder = textEncoder.trainable ? this.module('text_encoder', textEncoder) : textEncoder;
  }

  /** Encodes prompts; in training, each is replaced by the empty prompt with probability textDropoutProb. */
  encode(prompts: string[], o: { train?: boolean; generator?: GeneratorLike } = {}): TextEncoding {
    let p = prompts;
    if (o.train && this.generator.config.textDropoutProb > 0) {
      const drop = tidy(() =>
        rand([prompts.length], { generator: o.generator }).lt(this.generator.config.textDropoutProb).toArray(),
      ) as boolean[];
      p = prompts.map((q, i) => (drop[i] ? '' : q));
    }
    return this.textEncoder.encodeText(p);
  }

  /** The velocity field for a batch of prompts, with the empty prompt as the unconditional input. */
  field(prompts: string[]): GuidableField {
    const text = this.encode(prompts);
    const empty = this.encode(prompts.map(() => ''));
    return {
      cond: (x, t) => this.generator.forward(x, t, text),
      uncondAndCond: (x, t) =>
        tidy(() => this.generator.forward(cat([x, x]), cat([t, t]), catText(empty, text)).chunk(2) as [Tensor, Tensor]),
    };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Saved text-to-image models
// ---------------------------------------------------------------------------------------------------------------

/** The architecture of a saved text-to-image model: the generator and its small text encoder. */
export interface TextToImageConfig {
  t2i: T2IConfig;
  text: SmallTextConfig;
}

/**
 * Writes the model (generator and its small text encoder) as a self-describing model file, with the text encoder's
 * word vocabulary as the data's caption vocabulary; `loadTextToImage` reads it back. A model on a frozen
 * pretrained text encoder (CLIP) cannot be saved this way: that encoder's weights live in their own files.
 */
export function saveTextToImage(path: string, model: TextToImage, o: SaveOptions = {}): void {
  const text = model.textEncoder;
  if (!(text instanceof SmallTextEncoder))
    throw new Error(
      'saveTextToImage: only models with the small text encoder are saved as one file (a pretrained text encoder ' +
        'is loaded from its own files)',
    );
  const { width, depth, heads, maxLength } = text.config;
  const config: TextToImageConfig = { t2i: model.generator.config, text: { width, depth, heads, maxLength } };
  const data = { ...o.data, vocabulary: text.tokenizer.vocab };
  writeModelFile(path, 't2i', config, o.weights ?? model.stateDict(), { ...o, data });
}

/** A text-to-image model saved by `saveTextToImage` (or `reptok train t2i`), from its path or its bytes. */
export function loadTextToImage(source: ModelSource): TextToImage {
  return loadTextToImageFile(source).model;
}

/** `loadTextToImage` with the file's description (vocabulary, training, version). */
export function loadTextToImageFile(source: ModelSource): ModelDescription<TextToImageConfig> & { model: TextToImage } {
  return loadModelFile<TextToImageConfig, TextToImage>(source, 't2i', ({ config: { t2i, text }, data }) => {
    if (!data.vocabulary)
      throw new Error(`${sourceName(source)}: no caption vocabulary in its metadata ('data.vocabulary')`);
    return new TextToImage(t2i, new SmallTextEncoder(new WordTokenizer(data.vocabulary, text.maxLength), text));
  });
}
