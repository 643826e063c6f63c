// The RepTok pipeline: the trained models behind one object, for code and for the `reptok` commands alike.
//
//   const rt = RepTok.load({ tokenizer: 'tok.safetensors', generator: 'gen.safetensors' });
//   // or RepTok.load() for the shipped Fashion-MNIST models, RepTok.load('emoji') for text-to-image
//   const tokens = rt.encode(await rt.readImages(['a.png', 'b.png']));   // (2, D)
//   const images = rt.decode(tokens, { steps: 50, seed: 0 });            // (2, C, H, W) in [-1, 1]
//   const { images: frames } = rt.interpolate(tokens.select(0, 0), tokens.select(0, 1), { frames: 8 });
//   const { images: samples } = rt.sample({ classes: ['sneaker'], n: 4, guidance: 1.5 });
//
// Every method is deterministic for a given seed (default 0) and returns new tensors the caller disposes, on the
// pipeline's device (`device`; inputs from anywhere are moved there): `.to('cpu')` reads them on the host (the image
// writers do it themselves).
import {
  Generator,
  Tensor,
  cat,
  deviceProblem,
  noGrad,
  randn,
  stack,
  tensor,
  tidy,
  type Device,
} from '../engine/index.ts';
import type { SamplerName } from '../flow/ode.ts';
import { generate as generateTokens } from '../flow/token-flow.ts';
import { readImage, type ReadImageOptions } from '../io/image.ts';
import { loadTokenizerFile, type RepTokTokenizer, type TokenizerConfig } from '../models/tokenizer.ts';
import { classField, loadGeneratorFile, type GeneratorConfig, type MLPMixer1D } from '../models/generator.ts';
import { loadTextToImageFile, type TextToImage, type TextToImageConfig } from '../models/t2i.ts';
import { sourceName, type ModelDescription, type ModelSource } from '../models/model-file.ts';
import { loadOfficialCheckpoint, type OfficialCheckpointOptions } from '../models/official-checkpoint.ts';
import { resolvePrecision, withAutocast, type Precision } from '../train/autocast.ts';
import { PRECISIONS, isPrecisionSetting, type PrecisionSetting } from '../train/config.ts';
import { framePositions, interpolateTokens, type InterpolationMethod } from './interpolate.ts';
import { shippedSources, type ShippedFamily } from './shipped.ts';

/** Where the models come from: files (paths or their bytes); and how they run. */
export interface RepTokSources extends PipelineOptions {
  tokenizer?: ModelSource;
  generator?: ModelSource;
  t2i?: ModelSource;
  /**
   * A checkpoint holding several models at once (the RepTok authors' released `.ckpt`); it provides the tokenizer
   * and the generator.
   */
  checkpoint?: ModelSource;
  /** Settings for a released checkpoint that its file does not store (see `loadOfficialCheckpoint`). */
  checkpointOptions?: OfficialCheckpointOptions;
  /** Receives what loading had to assume or skip (a released checkpoint's report). */
  onNote?: (message: string) => void;
  /** Where the models run ('cpu' by default; 'cuda', 'cuda:1', ...). */
  device?: Device;
}

/** How a pipeline runs its models. */
export interface PipelineOptions {
  /**
   * Float32 linear layers on the CPU run on copies of their weights packed for oneDNN's matmul kernels
   * (`Module.packForInference`; default true): sampling the shipped models takes 0.76–0.88× the time
   * (`npm run bench:pipeline`), for a second copy of those weights in memory. false keeps one copy. No effect on
   * CUDA or where oneDNN's matmul primitives are absent.
   */
  packWeights?: boolean;
  /**
   * 'fp32' (default): every model computes in float32, and the outputs are the same on every CPU. 'bf16': under
   * bf16 autocast, as training's `precision=bf16` (docs/bf16.md): on a CPU with AVX512-BF16 or AMX, sampling the
   * shipped models takes 0.67× (Fashion-MNIST) and 0.8× (emoji) of float32's time, and the images differ from
   * float32's by a few 1/255 steps; elsewhere bf16 is emulated and slower. 'auto': bf16 where the CPU multiplies it
   * natively, fp32 elsewhere and on CUDA. Tokens and images are float32 either way.
   */
  precision?: PrecisionSetting;
}

/** A loaded model with what its file says about it. */
export type Loaded<M, C> = Omit<ModelDescription<C>, 'config'> & { model: M; source: string };

/** The models a pipeline runs. */
export interface PipelineModels {
  tokenizer: Loaded<RepTokTokenizer, TokenizerConfig>;
  generator?: Loaded<MLPMixer1D, GeneratorConfig>;
  t2i?: Loaded<TextToImage, TextToImageConfig>;
}

/** Progress of long work: `fraction` of the task `label` is done. */
export type ProgressFn = (label: string, fraction: number) => void;

export interface DecodeOptions {
  /** ODE steps of the fixed-step samplers (default 50, the reference's Euler steps). */
  steps?: number;
  sampler?: SamplerName;
  /** Seed of the decoder noise (default 0). */
  seed?: number;
  /** The decoder's starting noise (B, C, h, w) instead of one drawn from `seed`. */
  noise?: Tensor;
  /** Images decoded at once (default 16). */
  batchSize?: number;
  onProgress?: ProgressFn;
}

export interface InterpolateOptions extends Omit<DecodeOptions, 'noise'> {
  /** Frames including both ends (default 8). */
  frames?: number;
  /** 'slerp' (default; norm-aware spherical) or 'lerp'. */
  method?: InterpolationMethod;
}

export interface GenerationOptions {
  /** Classifier-free guidance scale (default 1.5; 1 turns guidance off). */
  guidance?: number;
  /** Times [t0, t1] where guidance applies (default [0.3, 0.9], as RepTok). */
  interval?: [number, number];
  /** ODE steps of the token generator and of the decoder (default 50). */
  steps?: number;
  sampler?: SamplerName;
  seed?: number;
  batchSize?: number;
  onProgress?: ProgressFn;
}

export interface SampleOptions extends GenerationOptions {
  /** Class names or indices (default: every class). */
  classes?: (string | number)[];
  /** Samples per class (default 1). */
  n?: number;
}

export interface GenerateOptions extends GenerationOptions {
  /** Samples per prompt (default 1). */
  n?: number;
}

export interface Generated {
  images: Tensor; // (B, C, H, W) in [-1, 1]
  tokens: Tensor; // (B, D)
}

/** Throws when the pipeline cannot run on `device` here (a CUDA device without CUDA), saying what to do instead. */
function checkDevice(device: Device): void {
  const problem = deviceProblem(device);
  if (problem) throw new Error(`RepTok: device '${device}': ${problem}`);
}

export class RepTok {
  readonly tokenizer: RepTokTokenizer;
  readonly generator: MLPMixer1D | null;
  readonly t2i: TextToImage | null;
  readonly device: Device;
  /** The precision the models compute in (`PipelineOptions.precision`, 'auto' resolved). */
  readonly precision: Precision;

  constructor(
    readonly models: PipelineModels,
    device: Device = 'cpu',
    o: PipelineOptions = {},
  ) {
    checkDevice(device);
    this.device = device;
    const precision = o.precision ?? 'fp32';
    if (!isPrecisionSetting(precision))
      throw new Error(
        `RepTok: precision must be one of ${PRECISIONS.map((p) => `'${p}'`).join(', ')}, got '${precision}'`,
      );
    this.precision = resolvePrecision(precision, device);
    this.tokenizer = models.tokenizer.model;
    this.generator = models.generator?.model ?? null;
    this.t2i = models.t2i?.model ?? null;
    const widths = [
      ['generator', models.generator, this.generator?.config.tokenDim],
      ['text-to-image model', models.t2i, this.t2i?.generator.config.tokenDim],
    ] as const;
    for (const [name, m, width] of widths)
      if (m && width !== this.tokenDim)
        throw new Error(
          `${m.source}: the ${name} makes tokens of width ${width}, but the tokenizer ${models.tokenizer.source} ` +
            `uses width ${this.tokenDim}; pass the tokenizer it was trained with`,
        );
    for (const m of [this.tokenizer, this.generator, this.t2i]) {
      m?.to({ device }).eval();
      if (o.packWeights ?? true) m?.packForInference();
    }
  }

  /** Loads the models from their files, or a family of the shipped models (default: Fashion-MNIST's). */
  static load(from: RepTokSources | ShippedFamily = 'fashion-mnist'): RepTok {
    const o = typeof from === 'string' ? shippedSources(from) : from;
    checkDevice(o.device ?? 'cpu'); // before any file is read
    const loaded: Partial<PipelineModels> = {};
    try {
      if (o.checkpoint !== undefined) {
        // the authors' released checkpoint: tokenizer and generator at once, each with what the file says of it
        const ckpt = loadOfficialCheckpoint(o.checkpoint, o.checkpointOptions);
        for (const note of [...ckpt.report.notes, ...ckpt.report.unknown.map((u) => `unknown weights ignored: ${u}`)])
          o.onNote?.(`${sourceName(o.checkpoint)}: ${note}`);
        const described = {
          data: ckpt.data,
          training: ckpt.training,
          extra: ckpt.extra,
          source: sourceName(o.checkpoint),
        };
        const reptok = `none (${ckpt.training.command})`;
        loaded.tokenizer = { kind: 'tokenizer', reptok, ...described, model: ckpt.tokenizer };
        loaded.generator = { kind: 'generator', reptok, ...described, model: ckpt.generator };
      }
      if (o.tokenizer === undefined && o.checkpoint === undefined)
        throw new Error('RepTok.load needs a tokenizer (a tokenizer.safetensors from `reptok train tokenizer`)');
      // files given alongside a checkpoint replace its models
      if (o.tokenizer !== undefined) {
        loaded.tokenizer?.model.dispose();
        delete loaded.tokenizer;
        loaded.tokenizer = fromFile(o.tokenizer, loadTokenizerFile);
      }
      if (o.generator !== undefined) {
        loaded.generator?.model.dispose();
        delete loaded.generator;
        loaded.generator = fromFile(o.generator, loadGeneratorFile);
      }
      if (o.t2i !== undefined) loaded.t2i = fromFile(o.t2i, loadTextToImageFile);
      return new RepTok(loaded as PipelineModels, o.device, o);
    } catch (e) {
      for (const m of Object.values(loaded)) m.model.dispose();
      throw e;
    }
  }

  // ---- what the models expect ----------------------------------------------------------------------------------

  /** [H, W] of the images the tokenizer decodes (and encodes best). */
  get imageSize(): [number, number] {
    return [...this.tokenizer.config.imageSize];
  }
  get channels(): number {
    return this.tokenizer.config.imageChannels;
  }
  /** Width D of a token. */
  get tokenDim(): number {
    return this.tokenizer.tokenDim;
  }
  /** The class-conditional generator's class names (indices as strings where its file names none). */
  get classes(): string[] {
    const g = this.models.generator;
    if (!g) return [];
    return g.data.classes ?? Array.from({ length: g.model.config.numClasses }, (_, i) => String(i));
  }

  /**
   * Reads image files (or encoded bytes) at the tokenizer's size and channels: (B, C, H, W) in [-1, 1]. Square
   * models take the centre square of each image; others resize to their size.
   */
  async readImages(inputs: (string | Buffer)[]): Promise<Tensor> {
    const [H, W] = this.imageSize;
    const o: ReadImageOptions = { channels: this.channels as 1 | 3, ...(H === W ? { size: H } : { resize: [H, W] }) };
    const images = await Promise.all(inputs.map((x) => readImage(x, o)));
    const out = stack(images);
    for (const t of images) t.dispose();
    return out;
  }

  // ---- tokenizer -----------------------------------------------------------------------------------------------

  /**
   * Images (B, C, H, W) in [-1, 1] -> tokens (B, D), `batchSize` images at a time (default 64), so that the encoder's
   * activations stay bounded however many images there are.
   */
  encode(images: Tensor, o: { batchSize?: number } = {}): Tensor {
    if (images.ndim !== 4) throw new RangeError(`expected images (B, C, H, W), got shape [${images.shape.join(', ')}]`);
    const B = images.shape[0]!;
    const chunk = positiveInt('batchSize', o.batchSize, 64);
    return noGrad(() =>
      tidy(() => {
        const parts: Tensor[] = [];
        for (let i = 0; i < B; i += chunk) {
          const x = images.slice(0, i, Math.min(B, i + chunk)).to({ device: this.device });
          parts.push(this.withPrecision(() => this.tokenizer.encode(x)).float());
        }
        return parts.length === 1 ? parts[0]! : cat(parts);
      }),
    );
  }

  /** Tokens (B, D) -> images (B, C, H, W) in [-1, 1], by solving the decoder's flow from noise. */
  decode(tokens: Tensor, o: DecodeOptions = {}): Tensor {
    this.#checkTokens(tokens);
    const B = tokens.shape[0]!;
    const noise = o.noise ?? this.noise(B, o.seed);
    if (noise.shape[0] !== B || noise.ndim !== 4)
      throw new RangeError(`noise must be (${B}, ${this.tokenizer.gridShape.join(', ')}), got [${noise.shape}]`);
    const chunk = positiveInt('batchSize', o.batchSize, 16);
    try {
      return noGrad(() =>
        tidy(() => {
          const parts: Tensor[] = [];
          for (let i = 0; i < B; i += chunk) {
            const n = Math.min(chunk, B - i);
            const step = (f: number) => o.onProgress?.('decoding', (i + f * n) / B);
            const out = this.withPrecision(() =>
              this.tokenizer.decode(tokens.slice(0, i, i + n).to({ device: this.device }), {
                noise: noise.slice(0, i, i + n).to({ device: this.device }),
                steps: o.steps ?? 50,
                sampler: o.sampler,
                onStep: step,
              }),
            );
            parts.push(out.images.float());
          }
          return cat(parts);
        }),
      );
    } finally {
      if (!o.noise) noise.dispose();
    }
  }

  /** Images -> their one-token reconstructions (same shape). */
  reconstruct(images: Tensor, o: DecodeOptions = {}): Tensor {
    const tokens = this.encode(images, { batchSize: o.batchSize });
    try {
      return this.decode(tokens, o);
    } finally {
      tokens.dispose();
    }
  }

  /**
   * Frames between two images (C, H, W) or two tokens (D): the tokens are interpolated (norm-aware slerp by
   * default) and every frame is decoded from the same noise, so the frames differ only by their tokens.
   */
  interpolate(a: Tensor, b: Tensor, o: InterpolateOptions = {}): Generated {
    const positions = framePositions(o.frames ?? 8);
    const [ta, tb] = [this.#token(a), this.#token(b)];
    try {
      const tokens = interpolateTokens(ta, tb, positions, o.method ?? 'slerp');
      const noise = tidy(() =>
        this.noise(1, o.seed)
          .expand(positions.length, ...this.tokenizer.gridShape)
          .contiguous(),
      );
      try {
        return { images: this.decode(tokens, { ...o, noise }), tokens };
      } finally {
        noise.dispose();
      }
    } finally {
      ta.dispose();
      tb.dispose();
    }
  }

  /** Standard normal decoder noise (B, C, h, w) drawn from `seed`. */
  noise(batch: number, seed = 0): Tensor {
    return randn([batch, ...this.tokenizer.gridShape], { generator: new Generator({ seed }), device: this.device });
  }

  // ---- generators ----------------------------------------------------------------------------------------------

  /** Class indices for class names or indices; throws on one the generator does not know. */
  classIndices(classes: (string | number)[]): number[] {
    const names = this.classes;
    return classes.map((c) => {
      const byName = typeof c === 'string' ? names.findIndex((n) => n.toLowerCase() === c.toLowerCase()) : -1;
      const index = byName >= 0 ? byName : typeof c === 'number' || /^\d+$/.test(c) ? Number(c) : -1;
      if (!(Number.isInteger(index) && index >= 0 && index < names.length))
        throw new Error(`unknown class '${c}'; this generator's classes are ${describeClasses(names)}`);
      return index;
    });
  }

  /** Class-conditional samples: `n` per class, one row of the result per class in order. */
  sample(o: SampleOptions = {}): Generated & { labels: number[] } {
    const g = this.generator;
    if (!g)
      throw new Error(
        this.t2i
          ? 'this pipeline has a text-to-image model, not a class-conditional generator: use generate(prompts)'
          : 'sampling needs a class-conditional generator: load one with { generator }',
      );
    if (g.config.numClasses === 0) throw new Error('this generator is unconditional; sampling by class needs classes');
    if (o.classes?.length === 0)
      throw new RangeError('sample: classes is empty; name the classes, or leave classes out for every class');
    const classes = o.classes ? this.classIndices(o.classes) : this.classes.map((_, i) => i);
    const n = positiveInt('n', o.n, 1);
    const labels = classes.flatMap((c) => Array<number>(n).fill(c));
    const y = tensor(Int32Array.from(labels), { dtype: 'int64', device: this.device });
    try {
      return { ...this.#generate(classField(g, y), labels.length, o), labels };
    } finally {
      y.dispose();
    }
  }

  /** Text-to-image samples: `n` per prompt, in prompt order. */
  generate(prompts: string[], o: GenerateOptions = {}): Generated {
    const m = this.t2i;
    if (!m)
      throw new Error(
        this.generator
          ? `this model is class-conditional (classes: ${describeClasses(this.classes)}) and takes no prompts; ` +
              'sample by class instead (reptok sample --class C)'
          : 'generating from prompts needs a text-to-image model: load one with { t2i }',
      );
    if (prompts.length === 0) throw new Error('generate: no prompts given');
    const all = prompts.flatMap((p) => Array<string>(positiveInt('n', o.n, 1)).fill(p));
    return this.#generate(m.field(all), all.length, o);
  }

  #generate(field: ReturnType<typeof classField>, count: number, o: GenerationOptions): Generated {
    const steps = o.steps ?? 50;
    const seed = o.seed ?? 0;
    const tokens = noGrad(() =>
      tidy(() => {
        const x0 = randn([count, 1, this.tokenDim], { generator: new Generator({ seed }), device: this.device });
        const { z } = this.withPrecision(() =>
          generateTokens(field, x0, {
            steps,
            sampler: o.sampler,
            guidance: { scale: o.guidance ?? 1.5, interval: o.interval ?? [0.3, 0.9] },
            onStep: (f) => o.onProgress?.('generating tokens', f),
          }),
        );
        return z.squeeze(1).float();
      }),
    );
    const images = this.decode(tokens, {
      steps,
      sampler: o.sampler,
      seed: seed + 1,
      batchSize: o.batchSize,
      onProgress: o.onProgress,
    });
    return { images, tokens };
  }

  // ---- helpers -------------------------------------------------------------------------------------------------

  /** fn under the pipeline's precision (bf16: autocast on its device), for code that calls the models directly. */
  withPrecision<T>(fn: () => T): T {
    return withAutocast(this.precision, fn, this.device);
  }

  #checkTokens(tokens: Tensor): void {
    if (tokens.ndim !== 2 || tokens.shape[1] !== this.tokenDim)
      throw new RangeError(
        `tokens have shape [${tokens.shape.join(', ')}], but this tokenizer's tokens are (B, ${this.tokenDim})`,
      );
  }

  /** An image (C, H, W) or (1, C, H, W) -> its token (D); a token (D) or (1, D) as it is. */
  #token(x: Tensor): Tensor {
    if (x.ndim === 3 || (x.ndim === 4 && x.shape[0] === 1))
      return tidy(() => this.encode(x.reshape(1, ...x.shape.slice(-3))).squeeze(0));
    if (x.ndim === 1 || (x.ndim === 2 && x.shape[0] === 1)) {
      const t = x.reshape(-1);
      this.#checkTokens(t.unsqueeze(0));
      return tidy(() => t.to({ device: this.device }).clone());
    }
    throw new RangeError(`interpolate takes an image (C, H, W) or a token (D), got shape [${x.shape.join(', ')}]`);
  }

  dispose(): void {
    for (const m of [this.tokenizer, this.generator, this.t2i]) m?.dispose();
  }
}

function fromFile<M, C>(
  source: ModelSource,
  load: (s: ModelSource) => ModelDescription<C> & { model: M },
): Loaded<M, C> {
  const { config: _config, ...rest } = load(source);
  return { ...rest, source: sourceName(source) };
}

/** A count option (`n`, `batchSize`: a 0 batch would never finish): `given`, checked, or `fallback`. */
function positiveInt(name: string, given: number | undefined, fallback: number): number {
  if (given === undefined) return fallback;
  if (!(Number.isInteger(given) && given > 0)) throw new RangeError(`${name} must be a positive integer, got ${given}`);
  return given;
}

function describeClasses(names: string[]): string {
  const shown = names.slice(0, 12).map((n, i) => (n === String(i) ? n : `${i}=${n}`));
  return shown.join(', ') + (names.length > 12 ? `, … (${names.length} in all)` : '');
}
