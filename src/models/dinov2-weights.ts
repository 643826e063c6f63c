// Loading DINOv2 weights as users have them: official torch-hub checkpoints (.pth, official key layout) and Hub
// safetensors (facebook/dinov2-*, facebook/dinov2-with-registers-*, transformers' key layout). The layout is
// detected from the keys; the Hub layout is converted by one key map (and q/k/v are fused into qkv). And our own
// encoders (`reptok train ssl`): self-describing files in the official layout (saveEncoder / loadEncoder).
import { Tensor, cat, noGrad, type StateDict } from '../engine/index.ts';
import { loadStateDictFile } from '../io/checkpoint-file.ts';
import { readSafetensorsMetadata } from '../io/safetensors.ts';
import { looksLikeZip } from '../io/zip.ts';
import { DINOV2_PRESETS, DinoVisionTransformer, type Dinov2Config } from './dinov2.ts';
import {
  modelKindOf,
  loadModelFile,
  writeModelFile,
  type ModelDescription,
  type ModelSource,
  type SaveOptions,
} from './model-file.ts';

// ---------------------------------------------------------------------------------------------------------------
// Hub (transformers) layout -> official layout
// ---------------------------------------------------------------------------------------------------------------

/** transformers name (after `encoder.layer.N.` for per-block keys) -> official name. */
const HUB_TOP: Record<string, string> = {
  'embeddings.cls_token': 'cls_token',
  'embeddings.mask_token': 'mask_token',
  'embeddings.position_embeddings': 'pos_embed',
  'embeddings.register_tokens': 'register_tokens',
  'embeddings.patch_embeddings.projection.weight': 'patch_embed.proj.weight',
  'embeddings.patch_embeddings.projection.bias': 'patch_embed.proj.bias',
  'layernorm.weight': 'norm.weight',
  'layernorm.bias': 'norm.bias',
};
const HUB_BLOCK: Record<string, string> = {
  'norm1.weight': 'norm1.weight',
  'norm1.bias': 'norm1.bias',
  'attention.output.dense.weight': 'attn.proj.weight',
  'attention.output.dense.bias': 'attn.proj.bias',
  'layer_scale1.lambda1': 'ls1.gamma',
  'norm2.weight': 'norm2.weight',
  'norm2.bias': 'norm2.bias',
  'mlp.fc1.weight': 'mlp.fc1.weight',
  'mlp.fc1.bias': 'mlp.fc1.bias',
  'mlp.fc2.weight': 'mlp.fc2.weight',
  'mlp.fc2.bias': 'mlp.fc2.bias',
  'mlp.weights_in.weight': 'mlp.w12.weight',
  'mlp.weights_in.bias': 'mlp.w12.bias',
  'mlp.weights_out.weight': 'mlp.w3.weight',
  'mlp.weights_out.bias': 'mlp.w3.bias',
  'layer_scale2.lambda1': 'ls2.gamma',
};
// q, k and v are separate Linear layers in transformers; the official model has one qkv Linear (rows q, k, v).
const HUB_QKV = ['query', 'key', 'value'] as const;

export type Dinov2Layout = 'official' | 'hub';

export function detectDinov2Layout(keys: Iterable<string>): Dinov2Layout {
  const list = [...keys];
  if (list.some((k) => k.startsWith('embeddings.') || k.startsWith('encoder.layer.'))) return 'hub';
  if (list.some((k) => k === 'cls_token' || k.startsWith('blocks.'))) return 'official';
  throw new Error(
    `not a DINOv2 state dict: expected official keys (cls_token, blocks.N...) or Hub keys (embeddings.*, ` +
      `encoder.layer.N...), got ${list.slice(0, 5).join(', ')}...`,
  );
}

/** Converts a Hub-layout state dict to the official layout (new tensors for the fused qkv; others are shared). */
export function hubToOfficial(sd: StateDict): StateDict {
  const out: StateDict = new Map();
  const unknown: string[] = [];
  const qkv = new Map<string, Map<string, Tensor>>(); // "blocks.N.attn.qkv.weight" -> {query, key, value}
  for (const [rawKey, t] of sd) {
    const key = rawKey.startsWith('dinov2.') ? rawKey.slice('dinov2.'.length) : rawKey; // models with a head
    if (HUB_TOP[key]) {
      out.set(HUB_TOP[key]!, t);
      continue;
    }
    const m = /^encoder\.layer\.(\d+)\.(.+)$/.exec(key);
    const qm = m && /^attention\.attention\.(query|key|value)\.(weight|bias)$/.exec(m[2]!);
    if (m && qm) {
      const target = `blocks.${m[1]}.attn.qkv.${qm[2]}`;
      (qkv.get(target) ?? qkv.set(target, new Map()).get(target)!).set(qm[1]!, t);
    } else if (m && HUB_BLOCK[m[2]!]) {
      out.set(`blocks.${m[1]}.${HUB_BLOCK[m[2]!]}`, t);
    } else {
      unknown.push(rawKey);
    }
  }
  if (unknown.length)
    throw new Error(`Hub DINOv2 checkpoint has keys this converter does not know: ${unknown.slice(0, 8).join(', ')}`);
  for (const [target, parts] of qkv) {
    if (parts.size !== 3)
      throw new Error(
        `Hub DINOv2 checkpoint: ${target} needs query, key and value, found ${[...parts.keys()].join(', ')}`,
      );
    out.set(
      target,
      noGrad(() =>
        cat(
          HUB_QKV.map((p) => parts.get(p)!),
          0,
        ),
      ),
    );
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Configuration from weights
// ---------------------------------------------------------------------------------------------------------------

/**
 * The architecture of an official-layout state dict, read from its shapes. The head count cannot be read from
 * weights: the released models all use 64-dimensional heads, which is the default.
 */
export function inferDinov2Config(sd: StateDict, overrides: Partial<Dinov2Config> = {}): Dinov2Config {
  const shape = (k: string): number[] => {
    const t = sd.get(k);
    if (!t) throw new Error(`DINOv2 state dict has no '${k}'`);
    return t.shape;
  };
  const embedDim = shape('cls_token')[2]!;
  const [, inChans, patchSize] = shape('patch_embed.proj.weight') as [number, number, number];
  const grid = Math.round(Math.sqrt(shape('pos_embed')[1]! - 1));
  const depth = new Set([...sd.keys()].map((k) => /^blocks\.(\d+)\./.exec(k)?.[1]).filter((x) => x !== undefined)).size;
  const swiglu = sd.has('blocks.0.mlp.w12.weight');
  const hidden = swiglu ? embedDim * 4 : shape('blocks.0.mlp.fc1.weight')[0]!;
  const numRegisterTokens = sd.has('register_tokens') ? shape('register_tokens')[1]! : 0;
  const layerScale = sd.has('blocks.0.ls1.gamma');
  return {
    imgSize: grid * patchSize,
    patchSize,
    inChans,
    embedDim,
    depth,
    numHeads: embedDim / 64,
    mlpRatio: hidden / embedDim,
    ffn: swiglu ? 'swiglu' : 'mlp',
    qkvBias: sd.has('blocks.0.attn.qkv.bias'),
    initValues: layerScale ? 1.0 : null,
    numRegisterTokens,
    // The released models tie the resize method to registers (see hub/backbones.py).
    interpolateAntialias: numRegisterTokens > 0,
    interpolateOffset: numRegisterTokens > 0 ? 0 : 0.1,
    layerNormEps: 1e-6,
    ...overrides,
  };
}

/** Maps a transformers `config.json` (Dinov2Config / Dinov2WithRegistersConfig) to ours. */
export function dinov2ConfigFromHub(hf: Record<string, any>): Dinov2Config {
  const regs = hf.num_register_tokens ?? 0;
  return {
    imgSize: hf.image_size ?? 518,
    patchSize: hf.patch_size ?? 14,
    inChans: hf.num_channels ?? 3,
    embedDim: hf.hidden_size,
    depth: hf.num_hidden_layers,
    numHeads: hf.num_attention_heads,
    mlpRatio: hf.mlp_ratio ?? 4,
    ffn: hf.use_swiglu_ffn ? 'swiglu' : 'mlp',
    qkvBias: hf.qkv_bias ?? true,
    initValues: hf.layerscale_value ?? 1.0,
    numRegisterTokens: regs,
    // transformers resizes register models with antialias and an output size, classic ones with the 0.1 offset
    interpolateAntialias: regs > 0,
    interpolateOffset: regs > 0 ? 0 : 0.1,
    layerNormEps: hf.layer_norm_eps ?? 1e-6,
  };
}

/** Official-layout weights from a state dict in either layout. */
export function toOfficialLayout(sd: StateDict): StateDict {
  return detectDinov2Layout(sd.keys()) === 'hub' ? hubToOfficial(sd) : sd;
}

/**
 * Loads a DINOv2 from a checkpoint file (.safetensors in either layout, an official torch-hub .pth, or an encoder
 * trained by `reptok train ssl`). The architecture comes from `config` (a preset name or a config), else from our
 * file's metadata, else from the weights' shapes.
 */
export function loadDinov2(
  path: string,
  o: { config?: Dinov2Config | keyof typeof DINOV2_PRESETS; overrides?: Partial<Dinov2Config> } = {},
): DinoVisionTransformer {
  if (!o.config && !o.overrides && !looksLikeZip(path) && modelKindOf(readSafetensorsMetadata(path)) === 'encoder')
    return loadEncoder(path);
  const raw = loadStateDictFile(path);
  const sd = toOfficialLayout(raw);
  const base = typeof o.config === 'string' ? DINOV2_PRESETS[o.config] : o.config;
  if (typeof o.config === 'string' && !base) throw new Error(`unknown DINOv2 preset '${o.config}'`);
  const model = noGrad(
    () => new DinoVisionTransformer(base ? { ...base, ...o.overrides } : inferDinov2Config(sd, o.overrides)),
  );
  model.loadStateDict(sd, { context: path });
  for (const t of new Set([...raw.values(), ...sd.values()])) t.dispose();
  return model;
}

// ---------------------------------------------------------------------------------------------------------------
// Our encoders: self-describing files (official layout + config)
// ---------------------------------------------------------------------------------------------------------------

/** Writes an encoder (official DINOv2 layout) as a self-describing model file; `loadEncoder` reads it back. */
export function saveEncoder(path: string, encoder: DinoVisionTransformer, o: SaveOptions = {}): void {
  const size = encoder.config.imgSize;
  const data = { imageSize: [size, size] as [number, number], valueRange: [-1, 1] as [number, number], ...o.data };
  writeModelFile(path, 'encoder', encoder.config, o.weights ?? encoder.stateDict(), { ...o, data });
}

/** An encoder saved by `saveEncoder` (or trained by `reptok train ssl`), from its path or its bytes. */
export function loadEncoder(source: ModelSource): DinoVisionTransformer {
  return loadEncoderFile(source).model;
}

/** `loadEncoder` with the file's description (data, training, version). */
export function loadEncoderFile(
  source: ModelSource,
): ModelDescription<Dinov2Config> & { model: DinoVisionTransformer } {
  return loadModelFile<Dinov2Config, DinoVisionTransformer>(
    source,
    'encoder',
    (d) => new DinoVisionTransformer(d.config),
  );
}
