// Self-describing model files: every product of training (SSL encoder, tokenizer, generator, text-to-image
// generator) is one .safetensors file whose metadata says what it is and how to rebuild it, so nothing needs a
// config on the side:
//
//   format    'reptok-encoder' | 'reptok-tokenizer' | 'reptok-generator' | 'reptok-t2i' | 'reptok-classifier'
//   config    the architecture (JSON): the constructor's config of the model
//   data      what it was trained on (JSON DataInfo): image size, channels, value range, class names or the caption
//             vocabulary
//   training  how it was trained (JSON TrainingInfo): the command, the step, the stage's resolved config
//   reptok    the version that wrote it
//
// Each model has its save/load pair next to its class (saveTokenizer/loadTokenizer in tokenizer.ts, ...); this file
// holds what they share. safetensors metadata values are strings, so the structured entries are JSON.
import { noGrad, type StateDict, type Tensor } from '../engine/index.ts';
import type { Module } from '../nn/index.ts';
import {
  loadSafetensors,
  readSafetensorsMetadata,
  saveSafetensors,
  type SafetensorsSource,
} from '../io/safetensors.ts';
import { REPTOK_VERSION } from '../version.ts';

export const MODEL_FORMATS = {
  encoder: 'reptok-encoder',
  tokenizer: 'reptok-tokenizer',
  generator: 'reptok-generator',
  t2i: 'reptok-t2i',
  classifier: 'reptok-classifier',
} as const;

export type ModelKind = keyof typeof MODEL_FORMATS;

/** A model file's path or its bytes. */
export type ModelSource = SafetensorsSource;

/** The data a model was trained on. Images are float tensors with values in `valueRange` ([-1, 1] throughout). */
export interface DataInfo {
  /** The data set as the training config names it ('fashion-mnist', 'emoji', 'folder:<path>'). */
  name?: string;
  /** [H, W] of the images. */
  imageSize?: [number, number];
  channels?: number;
  valueRange?: [number, number];
  /** Class names, index = label (class-conditional models and the data sets that have them). */
  classes?: string[];
  /** The caption vocabulary (the text-to-image model's word tokenizer, special tokens first). */
  vocabulary?: string[];
}

/** How a model was trained. */
export interface TrainingInfo {
  /** The command line that trained it (or the API call's description). */
  command: string;
  /** Optimizer steps taken. */
  step: number;
  /** The stage's resolved training config (as in the run's config.json). */
  config?: unknown;
}

/** What a model file says about itself besides its weights. */
export interface ModelDescription<C> {
  kind: ModelKind;
  config: C;
  data: DataInfo;
  training: TrainingInfo | null;
  /** The reptok version that wrote the file. */
  reptok: string;
  /** Other metadata entries (e.g. the tokenizer a generator was trained on, an attribution). */
  extra: Record<string, string>;
}

/** What the save functions take besides the model: where it came from. */
export interface SaveOptions {
  /** The weights to write (default: the model's own; the stages pass their EMA weights). */
  weights?: StateDict;
  data?: DataInfo;
  training?: TrainingInfo;
  extra?: Record<string, string>;
}

const RESERVED = new Set(['format', 'config', 'data', 'training', 'reptok']);

/** The name of a source in messages. */
export const sourceName = (source: ModelSource): string => (typeof source === 'string' ? source : '(buffer)');

/** Writes weights with a model description (atomically, like every safetensors file reptok writes). */
export function writeModelFile(
  path: string,
  kind: ModelKind,
  config: unknown,
  weights: StateDict,
  o: SaveOptions,
): void {
  const extra = o.extra ?? {};
  for (const k of Object.keys(extra))
    if (RESERVED.has(k)) throw new Error(`model file metadata: '${k}' is reserved for the model description`);
  saveSafetensors(path, weights, {
    format: MODEL_FORMATS[kind],
    config: JSON.stringify(config),
    data: JSON.stringify(o.data ?? {}),
    ...(o.training ? { training: JSON.stringify(o.training) } : {}),
    reptok: REPTOK_VERSION,
    ...extra,
  });
}

function parseJson(source: ModelSource, key: string, text: string): any {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${sourceName(source)}: metadata entry '${key}' is not valid JSON (${(e as Error).message})`);
  }
}

/** The kind of model a metadata block describes, or null for a file reptok did not write as a model. */
export function modelKindOf(metadata: Record<string, string>): ModelKind | null {
  const hit = Object.entries(MODEL_FORMATS).find(([, f]) => f === metadata.format);
  if (hit) return hit[0] as ModelKind;
  // reptok 0.1 wrote SSL encoders as format 'dinov2' (same layout, config and data keys)
  if (metadata.format === 'dinov2' && metadata.config) return 'encoder';
  return null;
}

/** A model description from a file's metadata (checked to be of `kind` when given). */
export function describeModel<C>(
  source: ModelSource,
  metadata: Record<string, string>,
  kind?: ModelKind,
): ModelDescription<C> {
  const found = modelKindOf(metadata);
  if (!found || (kind && found !== kind)) {
    const what = found ? `a reptok ${found}` : `not a reptok model file (format '${metadata.format ?? 'none'}')`;
    throw new Error(
      `${sourceName(source)}: expected a reptok ${kind ?? 'model'} ` +
        `('${kind ? MODEL_FORMATS[kind] : 'reptok-*'}' in its metadata), but it is ${what}`,
    );
  }
  if (!metadata.config) throw new Error(`${sourceName(source)}: its metadata has no architecture 'config'`);
  const data = metadata.data?.startsWith('{') ? parseJson(source, 'data', metadata.data) : { name: metadata.data };
  const extra = Object.fromEntries(Object.entries(metadata).filter(([k]) => !RESERVED.has(k)));
  return {
    kind: found,
    config: parseJson(source, 'config', metadata.config) as C,
    data: data as DataInfo,
    training: metadata.training ? parseJson(source, 'training', metadata.training) : null,
    reptok: metadata.reptok ?? 'unknown (before 0.1.0)',
    extra,
  };
}

/** Reads only a model file's description (the header; no weights). */
export function peekModelFile<C = unknown>(source: ModelSource, kind?: ModelKind): ModelDescription<C> {
  return describeModel<C>(source, readSafetensorsMetadata(source), kind);
}

/**
 * Reads a model file of `kind`, builds the model from its description and loads the weights into it, in eval mode.
 * The file's tensors are freed either way; a model whose weights do not fit is disposed before the error propagates.
 */
export function loadModelFile<C, M extends Module>(
  source: ModelSource,
  kind: ModelKind,
  build: (d: ModelDescription<C>) => M,
  load: (model: M, weights: Map<string, Tensor>, context: string) => void = (m, w, context) =>
    m.loadStateDict(w, { context }),
): ModelDescription<C> & { model: M } {
  const { weights, ...description } = readModelFile<C>(source, kind);
  try {
    const model = noGrad(() => build(description));
    try {
      load(model, weights, sourceName(source));
    } catch (e) {
      model.dispose();
      throw e;
    }
    model.eval();
    return { ...description, model };
  } finally {
    for (const t of weights.values()) t.dispose();
  }
}

/** Reads a model file of the given kind: its description and its weights. */
export function readModelFile<C>(
  source: ModelSource,
  kind: ModelKind,
): ModelDescription<C> & { weights: Map<string, Tensor> } {
  const description = peekModelFile<C>(source, kind);
  return { ...description, weights: loadSafetensors(source).tensors };
}
