// CLIP's text transformer (Radford et al., "Learning Transferable Visual Models From Natural Language
// Supervision", 2021) in transformers' CLIPTextModel layout (`text_model.*`), so the text tower of
// `openai/clip-vit-large-patch14` (or any CLIPTextModel / CLIPModel checkpoint) loads as it is.
// Reference: huggingface/transformers models/clip/modeling_clip.py (CLIPTextTransformer).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { F, Tensor, arange, full, noGrad, tensor, tidy, type StateDict } from '../../engine/index.ts';
import { Embedding, LayerNorm, Linear, Module, ModuleList } from '../../nn/index.ts';
import { loadStateDictFile } from '../../io/checkpoint-file.ts';
import { ClipTokenizer } from './clip-tokenizer.ts';
import type { TextEncoder, TextEncoding } from './text-encoder.ts';

export interface ClipTextConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  maxPositions: number;
  act: 'quick_gelu' | 'gelu';
  layerNormEps: number;
  eosTokenId: number;
}

export function clipTextConfigFromHub(hf: Record<string, any>): ClipTextConfig {
  const c = hf.text_config ?? hf; // CLIPModel configs nest the text tower
  return {
    vocabSize: c.vocab_size,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    maxPositions: c.max_position_embeddings ?? 77,
    act: c.hidden_act ?? 'quick_gelu',
    layerNormEps: c.layer_norm_eps ?? 1e-5,
    eosTokenId: c.eos_token_id ?? 2,
  };
}

/** openai/clip-vit-large-patch14's text tower (the SD 1.x text encoder): 12 layers, width 768. */
export const CLIP_VIT_L14_TEXT: ClipTextConfig = {
  vocabSize: 49408,
  hiddenSize: 768,
  intermediateSize: 3072,
  numLayers: 12,
  numHeads: 12,
  maxPositions: 77,
  act: 'quick_gelu',
  layerNormEps: 1e-5,
  eosTokenId: 49407,
};

class ClipAttention extends Module {
  readonly qProj: Linear;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly outProj: Linear;
  constructor(
    dim: number,
    readonly heads: number,
  ) {
    super();
    this.kProj = this.module('k_proj', new Linear(dim, dim));
    this.vProj = this.module('v_proj', new Linear(dim, dim));
    this.qProj = this.module('q_proj', new Linear(dim, dim));
    this.outProj = this.module('out_proj', new Linear(dim, dim));
  }
  forward(x: Tensor, mask: Tensor): Tensor {
    const [B, L, D] = x.shape as [number, number, number];
    const split = (t: Tensor): Tensor => t.reshape(B, L, this.heads, D / this.heads).transpose(1, 2); // (B, H, L, d)
    return tidy(() => {
      const o = F.scaledDotProductAttention(
        split(this.qProj.forward(x)),
        split(this.kProj.forward(x)),
        split(this.vProj.forward(x)),
        { mask },
      );
      return this.outProj.forward(o.transpose(1, 2).reshape(B, L, D));
    });
  }
}

class ClipMlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(
    dim: number,
    hidden: number,
    readonly act: ClipTextConfig['act'],
  ) {
    super();
    this.fc1 = this.module('fc1', new Linear(dim, hidden));
    this.fc2 = this.module('fc2', new Linear(hidden, dim));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const h = this.fc1.forward(x);
      // quick_gelu: x·sigmoid(1.702x), the approximation CLIP was trained with
      return this.fc2.forward(this.act === 'quick_gelu' ? h.mul(h.mul(1.702).sigmoid()) : F.gelu(h));
    });
  }
}

class ClipLayer extends Module {
  readonly selfAttn: ClipAttention;
  readonly layerNorm1: LayerNorm;
  readonly mlp: ClipMlp;
  readonly layerNorm2: LayerNorm;
  constructor(c: ClipTextConfig) {
    super();
    this.selfAttn = this.module('self_attn', new ClipAttention(c.hiddenSize, c.numHeads));
    this.layerNorm1 = this.module('layer_norm1', new LayerNorm(c.hiddenSize, c.layerNormEps));
    this.mlp = this.module('mlp', new ClipMlp(c.hiddenSize, c.intermediateSize, c.act));
    this.layerNorm2 = this.module('layer_norm2', new LayerNorm(c.hiddenSize, c.layerNormEps));
  }
  forward(x: Tensor, mask: Tensor): Tensor {
    return tidy(() => {
      const h = x.add(this.selfAttn.forward(this.layerNorm1.forward(x), mask));
      return h.add(this.mlp.forward(this.layerNorm2.forward(h)));
    });
  }
}

class ClipEmbeddings extends Module {
  readonly tokenEmbedding: Embedding;
  readonly positionEmbedding: Embedding;
  constructor(c: ClipTextConfig) {
    super();
    this.tokenEmbedding = this.module('token_embedding', new Embedding(c.vocabSize, c.hiddenSize));
    this.positionEmbedding = this.module('position_embedding', new Embedding(c.maxPositions, c.hiddenSize));
  }
  forward(ids: Tensor): Tensor {
    return tidy(() =>
      this.tokenEmbedding
        .forward(ids)
        .add(this.positionEmbedding.forward(arange(ids.shape[1]!, undefined, 1, { device: ids.device }))),
    );
  }
}

class ClipEncoder extends Module {
  readonly layers: ModuleList<ClipLayer>;
  constructor(c: ClipTextConfig) {
    super();
    this.layers = this.module('layers', new ModuleList(Array.from({ length: c.numLayers }, () => new ClipLayer(c))));
  }
}

class ClipTextTransformer extends Module {
  readonly embeddings: ClipEmbeddings;
  readonly encoder: ClipEncoder;
  readonly finalLayerNorm: LayerNorm;
  constructor(readonly config: ClipTextConfig) {
    super();
    this.embeddings = this.module('embeddings', new ClipEmbeddings(config));
    this.encoder = this.module('encoder', new ClipEncoder(config));
    this.finalLayerNorm = this.module('final_layer_norm', new LayerNorm(config.hiddenSize, config.layerNormEps));
  }
}

export class ClipTextModel extends Module implements TextEncoder {
  readonly textModel: ClipTextTransformer;
  readonly trainable = false;
  tokenizer: ClipTokenizer | null = null;

  constructor(readonly config: ClipTextConfig) {
    super();
    this.textModel = this.module('text_model', new ClipTextTransformer(config));
  }

  get dim(): number {
    return this.config.hiddenSize;
  }
  get maxLength(): number {
    return this.tokenizer?.maxLength ?? this.config.maxPositions;
  }

  /**
   * Token ids (B, L) and attention mask (B, L; 1 = token, 0 = padding) -> final-LayerNorm states (B, L, D) and the
   * pooled output: the state at the first EOS token (transformers' rule; `eos_token_id` 2 means the legacy
   * "highest id" rule of the original CLIP checkpoints).
   */
  forward(ids: Tensor, attentionMask?: Tensor): { lastHiddenState: Tensor; pooled: Tensor } {
    const [B, L] = ids.shape as [number, number];
    return tidy(() => {
      // causal mask plus padding mask on the keys, additive (−inf where masked)
      const causal = full([L, L], true, { device: ids.device }).tril();
      const keys = attentionMask
        ? attentionMask.to('bool').reshape(B, 1, 1, L)
        : full([B, 1, 1, L], true, { device: ids.device });
      const mask = causal.logicalAnd(keys); // (B, 1, L, L)
      let h = this.textModel.embeddings.forward(ids);
      for (const layer of this.textModel.encoder.layers) h = layer.forward(h, mask);
      const last = this.textModel.finalLayerNorm.forward(h);
      const eos = this.config.eosTokenId === 2 ? ids.argmax(-1) : ids.eq(this.config.eosTokenId).to('int32').argmax(-1);
      const pooled = last.index([arange(B, undefined, 1, { device: ids.device }), eos]);
      return { lastHiddenState: last, pooled };
    });
  }

  encodeText(prompts: string[]): TextEncoding {
    if (!this.tokenizer)
      throw new Error(
        'ClipTextModel: no tokenizer loaded (load the model with loadClipTextModel(folder), or set .tokenizer)',
      );
    const { ids, mask } = this.tokenizer.batch(prompts);
    return noGrad(() =>
      tidy(() => {
        const idsT = tensor(ids.flat(), { dtype: 'int64', shape: [prompts.length, ids[0]!.length] });
        const maskT = tensor(mask.flat(), { shape: [prompts.length, ids[0]!.length] });
        const out = this.forward(idsT, maskT);
        return { states: out.lastHiddenState, mask: maskT, pooled: out.pooled };
      }),
    );
  }
}

/** Keeps the text tower's keys of a CLIPTextModel or CLIPModel checkpoint. */
export function clipTextStateDict(sd: StateDict): StateDict {
  return new Map([...sd].filter(([k]) => k.startsWith('text_model.') && !k.endsWith('position_ids')));
}

/**
 * Loads a CLIP text encoder from a Hub folder: config.json, model.safetensors (or pytorch_model.bin), and the
 * tokenizer files (tokenizer.json, or vocab.json + merges.txt).
 */
export function loadClipTextModel(dir: string): ClipTextModel {
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath))
    throw new Error(`${dir}: no config.json (a CLIPTextModel or CLIPModel folder is expected)`);
  const model = noGrad(() => new ClipTextModel(clipTextConfigFromHub(JSON.parse(readFileSync(configPath, 'utf8')))));
  const weights = ['model.safetensors', 'pytorch_model.bin'].map((f) => join(dir, f)).find(existsSync);
  if (!weights) throw new Error(`${dir}: no model.safetensors or pytorch_model.bin`);
  model.loadStateDict(clipTextStateDict(loadStateDictFile(weights)), { context: weights });
  model.tokenizer = ClipTokenizer.fromFolder(dir);
  model.requiresGrad_(false).eval();
  return model;
}
