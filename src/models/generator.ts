// RepTok's representation generator (stage B): an attention-free MLP-Mixer flow model over [token, class, time]
// that generates new tokens for the tokenizer to decode. Mixer: Tolstikhin et al., "MLP-Mixer" (2021); class and
// time embeddings as in DiT (Peebles & Xie, 2023). Reference: CompVis/RepTok reptok/models/mlp-mixer.py
// (MLPMixer1D), reptok/models/transformer/dit.py (TimestepEmbedder, LabelEmbedder). Keys are the reference's
// (`pos_embed`, `t_embedder.mlp.{0,2}`, `label_embedder.embedding_table`, `mixer.N...`).
import { F, Tensor, cat, full, rand, randn, tidy, where, type GeneratorLike } from '../engine/index.ts';
import type { GuidableField } from '../flow/guidance.ts';
import {
  Dropout,
  Embedding,
  GELU,
  LayerNorm,
  Linear,
  Module,
  Sequential,
  TimestepEmbedder,
  type UnaryModule,
} from '../nn/index.ts';
import {
  loadModelFile,
  writeModelFile,
  type ModelDescription,
  type ModelSource,
  type SaveOptions,
} from './model-file.ts';

export interface GeneratorConfig {
  /** Width of a token (the tokenizer's D, e.g. 768). */
  tokenDim: number;
  /** Tokens per sample (1 for RepTok). */
  nTokens: number;
  /** Mixer width. */
  dim: number;
  depth: number;
  /**
   * Hidden width of the token-mixing MLP (across the sequence) over the sequence length (reference: expansion_factor).
   */
  tokenMlpRatio: number;
  /** Hidden width of the channel MLP over the mixer width (reference: expansion_factor_token). */
  channelMlpRatio: number;
  /** 0 for unconditional; else a label embedding with a null row for guidance. */
  numClasses: number;
  classDropoutProb: number;
  /** Extra context tokens prepended to the sequence (e.g. text states); 0 for the class-conditional model. */
  nExtraTokens: number;
  dropout: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Embeddings
// ---------------------------------------------------------------------------------------------------------------

/** Class labels -> vectors; the extra last row is the null label used for classifier-free guidance. */
export class LabelEmbedder extends Module {
  readonly embeddingTable: Embedding;
  constructor(
    readonly numClasses: number,
    hidden: number,
    readonly dropoutProb: number,
  ) {
    super();
    this.embeddingTable = this.module('embedding_table', new Embedding(numClasses + (dropoutProb > 0 ? 1 : 0), hidden));
  }
  get nullLabel(): number {
    return this.numClasses;
  }
  /** In training, each label is replaced by the null label with probability `dropoutProb`. */
  forward(labels: Tensor, train: boolean, generator?: GeneratorLike): Tensor {
    return tidy(() => {
      let y = labels;
      if (train && this.dropoutProb > 0)
        y = where(
          rand([labels.shape[0]!], { generator, device: labels.device }).lt(this.dropoutProb),
          this.numClasses,
          labels,
        );
      return this.embeddingTable.forward(y);
    });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Mixer
// ---------------------------------------------------------------------------------------------------------------

/** The reference's Conv1d(k=1) whose channels are the tokens: mixes tokens, one weight per (out, in) token pair. */
class TokenDense extends Module implements UnaryModule {
  readonly weight: Tensor; // (out, in, 1)
  readonly bias: Tensor; // (out)
  constructor(inTokens: number, outTokens: number) {
    super();
    const l = new Linear(inTokens, outTokens); // PyTorch's Conv1d(k=1) initialises like a Linear over the same fan-in
    this.weight = this.param('weight', l.weight.unsqueeze(-1).clone()); // a clone: a parameter must not be a view
    this.bias = this.param('bias', l.bias!.clone());
    l.dispose();
  }
  /** (B, dim, L_in) -> (B, dim, L_out): takes the token axis last (see TokenMixingMLP), so the convolution's product
   * is one GEMM over all positions (about 1.7× faster than libtorch's convolution path for these 3-token inputs). */
  forward(x: Tensor): Tensor {
    return tidy(() => F.linear(x, this.weight.squeeze(-1), this.bias));
  }
}

/**
 * The token-mixing MLP, the reference's Sequential(Conv1d, GELU, Dropout, Conv1d, Dropout) over the tokens (B, L,
 * dim) -> (B, L, dim). Without active dropout (eval mode, or p = 0 as in every preset) it is F.tokenMlp: one fused
 * kernel on the CPU that reads x as it lies (the layer-by-layer path's transposes, copies, K = 3/9 GEMMs with bias
 * copies, and the strided output that slowed the residual add and the next LayerNorm took 5–9% of a guided sampling
 * step of the paper-scale model; the kernel takes ~1.5%), the same products on the token axis moved last elsewhere.
 * In training with p > 0 the layers run one by one, the dropout masks between them.
 */
class TokenMixingMLP extends Sequential {
  forward(x: Tensor): Tensor {
    const [fc1, , dropout, fc2] = [...this] as [TokenDense, GELU, Dropout, TokenDense, Dropout];
    if (this.training && dropout.p > 0)
      // (B, L, dim) -> (B, dim, L), contiguous so that the first GEMM folds into one addmm, and back
      return tidy(() => super.forward(x.transpose(1, 2).contiguous()).transpose(1, 2));
    return tidy(() => F.tokenMlp(x, fc1.weight.squeeze(-1), fc1.bias, fc2.weight.squeeze(-1), fc2.bias));
  }
}

function feedForward(dim: number, expansion: number, dropout: number, token: boolean): Sequential {
  const inner = Math.floor(dim * expansion);
  const dense = (i: number, o: number): UnaryModule => (token ? new TokenDense(i, o) : new Linear(i, o));
  const layers = [dense(dim, inner), new GELU(), new Dropout(dropout), dense(inner, dim), new Dropout(dropout)];
  return token ? new TokenMixingMLP(...layers) : new Sequential(...layers);
}

/** x + fn(LayerNorm(x)) */
class PreNormResidual extends Module implements UnaryModule {
  readonly norm: LayerNorm;
  readonly fn: Sequential;
  constructor(dim: number, fn: Sequential) {
    super();
    this.fn = this.module('fn', fn);
    this.norm = this.module('norm', new LayerNorm(dim));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.fn.forward(this.norm.forward(x)).add(x));
  }
}

/** One mixer block: a pre-norm residual MLP across the sequence, then one across the channels. */
export function mixerBlock(
  seqLen: number,
  dim: number,
  tokenMlpRatio: number,
  channelMlpRatio: number,
  dropout: number,
): Sequential {
  return new Sequential(
    new PreNormResidual(dim, feedForward(seqLen, tokenMlpRatio, dropout, true)),
    new PreNormResidual(dim, feedForward(dim, channelMlpRatio, dropout, false)),
  );
}

/** The reference's MLPMixer_1D: Linear in -> depth × mixer block -> LayerNorm -> Linear out. */
export function mlpMixer1D(
  seqLen: number,
  channels: number,
  dim: number,
  depth: number,
  tokenMlpRatio: number,
  channelMlpRatio: number,
  dropout: number,
): Sequential {
  const blocks = Array.from({ length: depth }, () => mixerBlock(seqLen, dim, tokenMlpRatio, channelMlpRatio, dropout));
  return new Sequential(new Linear(channels, dim), ...blocks, new LayerNorm(dim), new Linear(dim, channels));
}

export class MLPMixer1D extends Module {
  readonly config: GeneratorConfig;
  readonly mixer: Sequential;
  readonly posEmbed: Tensor; // (1, n, C)
  readonly tEmbedder: TimestepEmbedder;
  readonly labelEmbedder: LabelEmbedder | null;

  constructor(config: GeneratorConfig) {
    super();
    const c = (this.config = { ...config });
    const seqLen = c.nTokens + (c.numClasses > 0 ? 2 : 1) + c.nExtraTokens;
    this.mixer = this.module(
      'mixer',
      mlpMixer1D(seqLen, c.tokenDim, c.dim, c.depth, c.tokenMlpRatio, c.channelMlpRatio, c.dropout),
    );
    this.posEmbed = this.param('pos_embed', randn([1, c.nTokens, c.tokenDim]));
    this.tEmbedder = this.module('t_embedder', new TimestepEmbedder(c.tokenDim));
    this.labelEmbedder =
      c.numClasses > 0
        ? this.module('label_embedder', new LabelEmbedder(c.numClasses, c.tokenDim, c.classDropoutProb))
        : null;
  }

  get nullLabel(): number | null {
    return this.labelEmbedder?.nullLabel ?? null;
  }

  /**
   * Velocity for tokens x (B, n, C) at times t (B), labels y (B) (null-label rows give the unconditional field),
   * and optional context tokens (B, nExtra, C) prepended to the sequence. Label dropout applies in training mode.
   */
  forward(
    x: Tensor,
    t: Tensor,
    o: { y?: Tensor | null; context?: Tensor | null; generator?: GeneratorLike } = {},
  ): Tensor {
    const n = x.shape[1]!;
    return tidy(() => {
      const parts = [x.add(this.posEmbed)];
      if (this.labelEmbedder) {
        if (!o.y)
          throw new Error(
            'this generator is class-conditional: pass labels y (the null label for unconditional samples)',
          );
        parts.push(this.labelEmbedder.forward(o.y, this.training, o.generator).unsqueeze(1));
      }
      parts.push(this.tEmbedder.forward(t).unsqueeze(1));
      let xs = cat(parts, 1); // (B, n + 1 (+1), C)
      const extra = o.context?.shape[1] ?? 0;
      if (extra !== this.config.nExtraTokens)
        throw new Error(`generator expects ${this.config.nExtraTokens} context tokens, got ${extra}`);
      if (o.context) xs = cat([o.context, xs], 1);
      return this.mixTokens(xs, extra, n);
    });
  }

  /**
   * The mixer over a whole sequence xs (B, L, C), returning its tokens [from, from + n). After the last block's
   * token mixing every layer works on each token alone (LayerNorm, channel MLP, output Linear), so from there on
   * only those n tokens are computed: a third of the last block's channel MLP for the class-conditional model
   * (3 tokens, 1 returned), the same results as `mixer.forward(xs).slice(1, from, from + n)`.
   */
  mixTokens(xs: Tensor, from: number, n: number): Tensor {
    const last = this.config.depth; // the last block's index in the mixer: Linear, blocks 1..depth, LayerNorm, Linear
    if (last === 0) return tidy(() => this.mixer.forward(xs).slice(1, from, from + n));
    return tidy(() => {
      let h = xs;
      const next = (t: Tensor): void => {
        if (h !== xs) h.dispose(); // as Sequential does: each intermediate freed once consumed
        h = t;
      };
      for (const [i, layer] of [...this.mixer].entries()) {
        if (i !== last) next(layer.forward(h));
        else {
          const [tokenMixing, channelMixing] = [...(layer as Sequential)] as [UnaryModule, UnaryModule];
          next(tokenMixing.forward(h));
          next(h.slice(1, from, from + n));
          next(channelMixing.forward(h));
        }
      }
      return h;
    });
  }
}

/**
 * The velocity field for labels y (B) in the form guidance needs: conditional alone, or [unconditional,
 * conditional] from one batched evaluation with the null label for the unconditional half.
 */
export function classField(model: MLPMixer1D, y: Tensor): GuidableField {
  const nul = model.nullLabel;
  const B = y.shape[0]!;
  return {
    cond: (x, t) => model.forward(x, t, { y }),
    uncondAndCond: (x, t) =>
      tidy(() => {
        if (nul === null)
          throw new Error('guidance needs a class-conditional generator with a null label (classDropoutProb > 0)');
        const yy = cat([full([B], nul, { dtype: 'int64', device: y.device }), y]);
        return model.forward(cat([x, x]), cat([t, t]), { y: yy }).chunk(2) as [Tensor, Tensor];
      }),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Presets
// ---------------------------------------------------------------------------------------------------------------

const base = {
  nTokens: 1,
  tokenMlpRatio: 3,
  channelMlpRatio: 4,
  classDropoutProb: 0.1,
  nExtraTokens: 0,
  dropout: 0,
};

/** The paper's ImageNet generator: token 768, mixer dim 1152, depth 28, 1000 classes. */
export const GENERATOR_PRESETS = {
  'mixer-xl': { ...base, tokenDim: 768, dim: 1152, depth: 28, numClasses: 1000 },
  'mixer-l': { ...base, tokenDim: 768, dim: 1024, depth: 16, numClasses: 1000 },
  'mixer-s': { ...base, tokenDim: 192, dim: 384, depth: 8, numClasses: 10 },
  'mixer-tiny': { ...base, tokenDim: 48, dim: 64, depth: 2, numClasses: 10 },
} satisfies Record<string, GeneratorConfig>;

export type GeneratorPreset = keyof typeof GENERATOR_PRESETS;

export function generatorModel(preset: GeneratorPreset, overrides: Partial<GeneratorConfig> = {}): MLPMixer1D {
  const c = Object.hasOwn(GENERATOR_PRESETS, preset) ? GENERATOR_PRESETS[preset] : undefined;
  if (!c)
    throw new Error(`unknown generator preset '${preset}'; choose one of ${Object.keys(GENERATOR_PRESETS).join(', ')}`);
  return new MLPMixer1D({ ...c, ...overrides });
}

// ---------------------------------------------------------------------------------------------------------------
// Saved generators
// ---------------------------------------------------------------------------------------------------------------

/**
 * Writes the generator as a self-describing model file; `loadGenerator` reads it back. The class names belong in
 * `o.data.classes` (label i = classes[i]) so that samples can be asked for by name.
 */
export function saveGenerator(path: string, model: MLPMixer1D, o: SaveOptions = {}): void {
  const classes = o.data?.classes;
  if (classes && classes.length !== model.config.numClasses)
    throw new Error(
      `saveGenerator: ${classes.length} class names for a generator of ${model.config.numClasses} classes`,
    );
  writeModelFile(path, 'generator', model.config, o.weights ?? model.stateDict(), o);
}

/** A generator saved by `saveGenerator` (or trained by `reptok train generator`), from its path or its bytes. */
export function loadGenerator(source: ModelSource): MLPMixer1D {
  return loadGeneratorFile(source).model;
}

/** `loadGenerator` with the file's description (class names, training, version). */
export function loadGeneratorFile(source: ModelSource): ModelDescription<GeneratorConfig> & { model: MLPMixer1D } {
  return loadModelFile<GeneratorConfig, MLPMixer1D>(source, 'generator', (d) => new MLPMixer1D(d.config));
}
