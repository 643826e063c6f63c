// The work the web demo hands to its inference processes, and what comes back: plain data (numbers, strings,
// PNG bytes, token vectors) that crosses a process boundary with structured clone.
import type { ModelSet } from '../pipeline/model-set.ts';

/** What the page needs to know about a model set: what it can do and with which inputs. */
export interface ModelSetInfo {
  name: string;
  imageSize: [number, number];
  channels: number;
  tokenDim: number;
  /** Class names of the class-conditional generator (empty without one). */
  classes: string[];
  /** Whether a text-to-image model is loaded. */
  prompts: boolean;
  /** Words the text-to-image model knows (its caption vocabulary), to suggest prompts. */
  vocabulary: string[];
  /** The reference images a token's neighbours are searched among, or why there are none. */
  references: { count: number; from: string } | { count: 0; why: string };
}

export interface WorkerInit {
  sets: ModelSet[];
  /** libtorch CPU threads of this process (0: leave libtorch's default). */
  threads: number;
  /** At most this many reference images per model set (0: none). */
  references: number;
}

interface Base {
  set: string;
  /** ODE steps of the decoder and generators. */
  steps: number;
  seed: number;
}

export type Job =
  | (Base & { kind: 'encode'; image: Uint8Array })
  | (Base & { kind: 'reconstruct'; image: Uint8Array; neighbours: number })
  | (Base & { kind: 'interpolate'; a: Float32Array; b: Float32Array; frames: number })
  | (Base & { kind: 'sample'; class: string; guidance: number; n: number })
  | (Base & { kind: 'generate'; prompt: string; guidance: number; n: number });

export interface Neighbour {
  png: Uint8Array;
  /** Cosine similarity of the tokens. */
  similarity: number;
  label: string | null;
}

export interface JobResult {
  /** The uploaded image as the model sees it (its size and channels). */
  original?: Uint8Array;
  token?: Float32Array;
  /** Generated or reconstructed images (PNG bytes). */
  images?: Uint8Array[];
  psnr?: number;
  neighbours?: Neighbour[];
}

/** Parent -> inference process. */
export type ToWorker = { type: 'init'; init: WorkerInit } | { type: 'job'; id: number; job: Job; deadline: number };

/** Inference process -> parent. `input` errors are the request's fault (an unreadable image, an unknown class). */
export type FromWorker =
  | { type: 'ready'; sets: ModelSetInfo[] }
  | { type: 'failed'; message: string }
  | { type: 'done'; id: number; result: JobResult }
  | { type: 'error'; id: number; message: string; kind: 'input' | 'timeout' | 'internal' };
