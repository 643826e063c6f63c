// A small transformer text encoder that trains from scratch together with the text-to-image generator, for data
// sets without a pretrained text model (the bundled emoji model): word embeddings + learned positions,
// pre-LayerNorm bidirectional self-attention blocks with a padding mask, final LayerNorm; pooled = mean of the
// real tokens.
import { Tensor, arange, noGrad, tensor, tidy } from '../../engine/index.ts';
import { Embedding, LayerNorm, Module, ModuleList, TransformerBlock } from '../../nn/index.ts';
import { WordTokenizer } from './word-tokenizer.ts';
import type { TextEncoder, TextEncoding } from './text-encoder.ts';

export interface SmallTextConfig {
  width: number;
  depth: number;
  heads: number;
  maxLength: number;
}

export class SmallTextEncoder extends Module implements TextEncoder {
  readonly tokenEmbedding: Embedding;
  readonly positionEmbedding: Embedding;
  readonly blocks: ModuleList<TransformerBlock>;
  readonly norm: LayerNorm;
  readonly trainable = true;

  constructor(
    readonly tokenizer: WordTokenizer,
    readonly config: SmallTextConfig,
  ) {
    super();
    this.tokenEmbedding = this.module('token_embedding', new Embedding(tokenizer.vocab.length, config.width));
    this.positionEmbedding = this.module('position_embedding', new Embedding(config.maxLength, config.width));
    noGrad(() => {
      this.tokenEmbedding.weight.mul_(0.02);
      this.positionEmbedding.weight.mul_(0.02);
    });
    this.blocks = this.module(
      'blocks',
      new ModuleList(Array.from({ length: config.depth }, () => new TransformerBlock(config.width, config.heads))),
    );
    this.norm = this.module('norm', new LayerNorm(config.width));
  }

  get dim(): number {
    return this.config.width;
  }
  get maxLength(): number {
    return this.config.maxLength;
  }

  /** ids (B, L), mask (B, L) bool -> states (B, L, W) and the mean of the real tokens' states. */
  forward(ids: Tensor, mask: Tensor): { states: Tensor; pooled: Tensor } {
    const [B, L] = ids.shape as [number, number];
    return tidy(() => {
      let h = this.tokenEmbedding
        .forward(ids)
        .add(this.positionEmbedding.forward(arange(L, undefined, 1, { device: ids.device })));
      const keyMask = mask.reshape(B, 1, 1, L);
      for (const b of this.blocks) h = b.forward(h, { mask: keyMask });
      const states = this.norm.forward(h);
      const m = mask.unsqueeze(-1).to(states.dtype);
      return { states, pooled: states.mul(m).sum(1).div(m.sum(1).clampMin(1)) };
    });
  }

  encodeText(prompts: string[]): TextEncoding {
    const { ids, mask } = this.tokenizer.batch(prompts, this.config.maxLength);
    return tidy(() => {
      const L = this.config.maxLength;
      const device = this.tokenEmbedding.weight.device;
      const maskT = tensor(mask.flat(), { shape: [prompts.length, L], device });
      const out = this.forward(tensor(ids.flat(), { dtype: 'int64', shape: [prompts.length, L], device }), maskT);
      return { states: out.states, mask: maskT, pooled: out.pooled };
    });
  }
}
