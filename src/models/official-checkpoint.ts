// The RepTok authors' released checkpoint (`reptok-xl-600k-ImageNet.ckpt`, CompVis/RepTok): a PyTorch-Lightning
// pickle of `reptok.trainer_gen.TrainerModuleLatentFlow`, read as data and turned into our models. Nothing in the
// file runs: its omegaconf hyper-parameters are read by the inert unpickler (io/pickle.ts, io/omegaconf.ts).
//
//   state_dict prefix                     what                                         becomes
//   model.net.(mixer._orig_mod.)*         online generator (FlowModel(MLPMixer1D).net)  generator, when no EMA
//   ema_model.net.*                       EMA generator (what the release samples with) generator
//   first_stage.encoder.encoder.*         fine-tuned DINOv2, bfloat16 (what encode uses) tokenizer encoder.dino.model
//   first_stage.decoder.decoder.*         the RepTokLatentRF2D monolith: adapter, decoder, tokenizer (our key layout)
//                                         time mapping, SD-VAE (ae.ae.*), fp32 DINOs
//   metric_tracker.*                      FID Inception weights (evaluation only)        ignored
//   anything else                         —                                              reported, ignored
//
// Architecture: the generator's from `hyper_parameters.flow_cfg.params.net_cfg.params`; `scale_factor` and
// `image_size` from `hyper_parameters.first_stage_cfg.params`; the decoder's, the DINOv2's and the VAE's from the
// tensor shapes. The release reads those from a model YAML (`first_stage_cfg.params.config_path`) that the checkpoint
// only names; when given (`modelConfig`), its literal values are checked against the shapes and its patch size used.
// Not stored anywhere: the DINOv2 head count (64-dimensional heads assumed, true for every released DINOv2; override
// with `encoder.numHeads`) and the VAE's GroupNorm group count (the largest of 32 and below dividing every block
// width, i.e. diffusers' 32 for the SD-VAE; override with `vae.normNumGroups`).
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';

import { Tensor, noGrad, type StateDict } from '../engine/index.ts';
import { normalizeKey } from '../io/checkpoint-file.ts';
import { loadTorchCheckpoint } from '../io/torch-checkpoint.ts';
import { omegaconfToPlain, type Plain } from '../io/omegaconf.ts';
import { inferDinov2Config } from './dinov2-weights.ts';
import { type Dinov2Config } from './dinov2.ts';
import { MLPMixer1D, type GeneratorConfig } from './generator.ts';
import { RepTokTokenizer, type TokenizerConfig } from './tokenizer.ts';
import { SD_VAE, type VaeConfig } from './vae.ts';
import type { DataInfo, ModelSource, TrainingInfo } from './model-file.ts';

export interface OfficialCheckpointOptions {
  /** RepTok's monolith model YAML (`configs/model/reptok.yaml`), when at hand; never required. */
  modelConfig?: string;
  /** Settings the file does not store (see the header): DINOv2 head count, VAE group count. */
  encoder?: Partial<Dinov2Config>;
  vae?: Partial<VaeConfig>;
  /** 'ema' (default, what the release samples with; the online weights when the file has no EMA) or 'online'. */
  generatorWeights?: 'ema' | 'online';
}

export interface OfficialCheckpoint {
  /** encode: images in [-1, 1] -> tokens / scale_factor (the release's `module.encode`, without its (B, 1, D) axis);
   *  decode: the inverse through 50 Euler steps and the VAE (`module.decode`). */
  tokenizer: RepTokTokenizer;
  /** The class-conditional MLP-Mixer in the tokenizer's token units (null label = number of classes). */
  generator: MLPMixer1D;
  /** Which generator weights were loaded. */
  generatorWeights: 'ema' | 'online';
  /** The hyper-parameters as plain data (omegaconf interpolations resolved). */
  hyperParameters: { [key: string]: Plain };
  /** Lightning's bookkeeping: the training step and epoch the file was saved at. */
  globalStep: number | null;
  epoch: number | null;
  /** What was not loaded and why, and settings that had to be assumed. */
  report: { ignored: string[]; unknown: string[]; notes: string[] };
  /** The models' description as reptok model files carry it (what `reptok convert` writes into their metadata). */
  data: DataInfo;
  training: TrainingInfo;
  extra: Record<string, string>;
}

/** State-dict prefixes and what they are. */
const PREFIX = {
  online: 'model.net.',
  ema: 'ema_model.net.',
  encoder: 'first_stage.encoder.encoder.',
  monolith: 'first_stage.decoder.decoder.',
  metrics: 'metric_tracker.',
} as const;

/** Loads the released checkpoint (or one of the same format) from its path. */
export function loadOfficialCheckpoint(source: ModelSource, o: OfficialCheckpointOptions = {}): OfficialCheckpoint {
  if (typeof source !== 'string')
    throw new Error('a released RepTok checkpoint (.ckpt) is read from its path, not from bytes: pass the file path');
  const path = source;
  const top = loadTorchCheckpoint(path, { inert: true });
  try {
    return officialCheckpointFrom(top, path, o);
  } finally {
    disposeTensors(top);
  }
}

/** Frees every tensor of an unpickled object (the models hold copies), except those in `keep`. */
function disposeTensors(v: unknown, keep = new Set<unknown>(), seen = new Set<unknown>()): void {
  if (seen.has(v) || keep.has(v)) return;
  seen.add(v);
  if (v instanceof Tensor) v.dispose();
  else if (v instanceof Map) for (const x of v.values()) disposeTensors(x, keep, seen);
  else if (Array.isArray(v)) for (const x of v) disposeTensors(x, keep, seen);
}

// ---------------------------------------------------------------------------------------------------------------
// The checkpoint object -> models
// ---------------------------------------------------------------------------------------------------------------

function officialCheckpointFrom(top: unknown, path: string, o: OfficialCheckpointOptions): OfficialCheckpoint {
  const fail = (problem: string): never => {
    throw new Error(`${path}: ${problem}`);
  };
  if (!(top instanceof Map) || !(top.get('state_dict') instanceof Map) || !top.has('hyper_parameters'))
    fail(
      "not a PyTorch-Lightning checkpoint of RepTok's TrainerModuleLatentFlow " +
        "(expected top-level 'state_dict' and 'hyper_parameters')",
    );
  const report: OfficialCheckpoint['report'] = { ignored: [], unknown: [], notes: [] };
  const hpRaw = (top as Map<string, unknown>).get('hyper_parameters');
  if (!(hpRaw instanceof Map)) return fail('hyper_parameters is not a dict');
  // entry by entry: one the loader does not need (say, a pickled object of some class) must not block loading
  const hp: { [key: string]: Plain } = {};
  for (const [k, v] of hpRaw) {
    try {
      Object.defineProperty(hp, String(k), {
        value: omegaconfToPlain(v, `hyper_parameters.${String(k)}`),
        enumerable: true,
        writable: true,
      });
    } catch (e) {
      if (k === 'flow_cfg' || k === 'first_stage_cfg') fail((e as Error).message);
      report.ignored.push(`${(e as Error).message} (not needed)`);
    }
  }
  const sd = (top as Map<string, unknown>).get('state_dict') as Map<unknown, unknown>;

  // ---- sort the state dict by prefix
  const parts = { online: new Map(), ema: new Map(), encoder: new Map(), monolith: new Map() } as Record<
    'online' | 'ema' | 'encoder' | 'monolith',
    StateDict
  >;
  let metricKeys = 0;
  const unknownCounts = new Map<string, number>();
  for (const [rawKey, t] of sd) {
    const key = String(rawKey);
    if (!(t instanceof Tensor)) continue; // Lightning may store non-tensor extras (e.g. `_metadata`)
    const part = (Object.keys(parts) as (keyof typeof parts)[]).find((p) => key.startsWith(PREFIX[p]));
    if (part) parts[part].set(normalizeKey(key.slice(PREFIX[part].length)), t);
    else if (key.startsWith(PREFIX.metrics)) metricKeys++;
    else {
      const prefix = key.split('.').slice(0, 2).join('.');
      unknownCounts.set(prefix, (unknownCounts.get(prefix) ?? 0) + 1);
    }
  }
  if (metricKeys) report.ignored.push(`${PREFIX.metrics}* (${metricKeys} tensors: FID evaluation weights)`);
  for (const [prefix, n] of unknownCounts) report.unknown.push(`${prefix}.* (${n} tensors)`);
  for (const p of ['encoder', 'monolith'] as const)
    if (!parts[p].size)
      fail(`the state dict has no '${PREFIX[p]}*' weights: this is not a RepTok checkpoint with its first stage`);

  // ---- generator
  const want = o.generatorWeights ?? 'ema';
  let generatorWeights: 'ema' | 'online' = want;
  if (want === 'ema' && !parts.ema.size) {
    generatorWeights = 'online';
    report.notes.push(
      `no EMA generator weights ('${PREFIX.ema}*'; ema_rate ${JSON.stringify(hp.ema_rate ?? null)}): ` +
        'sampling uses the online weights, as the release does without an EMA model',
    );
  }
  if (!parts[generatorWeights].size) fail(`the state dict has no generator weights ('${PREFIX[generatorWeights]}*')`);
  // free what no model takes (optimizer state, the other generator, FID weights, ...) before the models are built,
  // so that the file's tensors and the models are not all in memory at once
  const used = new Set<unknown>(
    [parts[generatorWeights], parts.encoder, parts.monolith].flatMap((p) => [...p.values()]),
  );
  disposeTensors(top, used);
  const generator = noGrad(() => new MLPMixer1D(generatorConfig(hp, path)));
  generator.loadStateDict(parts[generatorWeights], { context: `${path} (${PREFIX[generatorWeights]}*)` });
  generator.eval();

  // ---- tokenizer: monolith weights, then the release's bf16 encoder for encode
  const yaml = o.modelConfig ? readModelYaml(o.modelConfig) : null;
  const config = tokenizerConfig(hp, parts, yaml, o, path, report);
  const tokenizer = noGrad(() => new RepTokTokenizer(config));
  tokenizer.loadReferenceStateDict(parts.monolith, { context: `${path} (${PREFIX.monolith}*)` });
  // The release encodes with its own bfloat16 copy of the fine-tuned DINOv2 (RepTokImageEncoder), not the monolith's
  // float32 one: those weights, exactly representable in float32, become the encoder's.
  tokenizer.tokenEncoder.model.loadStateDict(parts.encoder, { context: `${path} (${PREFIX.encoder}*)` });
  tokenizer.eval();

  const num = (k: string): number | null => {
    const v = (top as Map<string, unknown>).get(k);
    return typeof v === 'number' ? v : null;
  };
  const lightning = (top as Map<string, unknown>).get('pytorch-lightning_version');
  return {
    tokenizer,
    generator,
    generatorWeights,
    hyperParameters: hp,
    globalStep: num('global_step'),
    epoch: num('epoch'),
    report,
    data: { imageSize: config.imageSize, channels: config.imageChannels, valueRange: [-1, 1] },
    training: {
      command: `CompVis/RepTok TrainerModuleLatentFlow (PyTorch Lightning ${
        typeof lightning === 'string' ? lightning : 'unknown version'
      })`,
      step: num('global_step') ?? 0,
      config: hp,
    },
    extra: { convertedFrom: path, generatorWeights },
  };
}

const isObject = (v: unknown): v is { [key: string]: Plain } =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** `obj.a.b.c` of plain hyper-parameters, or undefined. */
function pick(obj: Plain | undefined, path: string): Plain | undefined {
  let v: Plain | undefined = obj;
  for (const k of path.split('.')) v = isObject(v) && Object.hasOwn(v, k) ? v[k] : undefined;
  return v;
}

// ---------------------------------------------------------------------------------------------------------------
// Generator: hyper_parameters.flow_cfg
// ---------------------------------------------------------------------------------------------------------------

function generatorConfig(hp: { [key: string]: Plain }, path: string): GeneratorConfig {
  const where = 'hyper_parameters.flow_cfg';
  const flow = pick(hp, 'flow_cfg');
  const target = pick(flow, 'target');
  if (typeof target !== 'string' || !target.endsWith('FlowModel'))
    throw new Error(`${path}: ${where}.target is ${JSON.stringify(target)}, expected RepTok's reptok.flow.FlowModel`);
  const schedule = pick(flow, 'params.schedule') ?? 'linear';
  if (schedule !== 'linear')
    throw new Error(`${path}: ${where}.params.schedule is '${schedule}'; only the 'linear' schedule is implemented`);
  const sigmaMin = pick(flow, 'params.sigma_min') ?? 0;
  if (sigmaMin !== 0) throw new Error(`${path}: ${where}.params.sigma_min is ${sigmaMin}; only 0 is implemented`);
  const netTarget = pick(flow, 'params.net_cfg.target');
  if (typeof netTarget !== 'string' || !netTarget.endsWith('MLPMixer1D'))
    throw new Error(`${path}: ${where}.params.net_cfg.target is ${JSON.stringify(netTarget)}, expected MLPMixer1D`);
  const p = pick(flow, 'params.net_cfg.params');
  // defaults: the reference's MLPMixer1D signature
  const num = (k: string, dflt?: number): number => {
    const v = pick(p, k) ?? dflt;
    if (typeof v !== 'number')
      throw new Error(`${path}: ${where}.params.net_cfg.params.${k} is ${JSON.stringify(v)}, expected a number`);
    return v;
  };
  return {
    tokenDim: num('channels'),
    nTokens: num('n_channels'),
    dim: num('dim'),
    depth: num('depth'),
    tokenMlpRatio: num('expansion_factor', 4),
    channelMlpRatio: num('expansion_factor_token', 0.5),
    numClasses: num('num_classes', 0),
    classDropoutProb: num('class_dropout_prob', 0.1),
    nExtraTokens: num('n_extra_tokens', 0),
    dropout: num('dropout', 0),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Tokenizer: hyper_parameters.first_stage_cfg, tensor shapes, and the model YAML when given
// ---------------------------------------------------------------------------------------------------------------

function readModelYaml(file: string): Plain {
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not a readable YAML file (${(e as Error).message})`);
  }
  const model = pick(doc as Plain, 'model');
  if (!isObject(model)) throw new Error(`${file}: no 'model' section (expected RepTok's configs/model/reptok.yaml)`);
  return model;
}

function tokenizerConfig(
  hp: { [key: string]: Plain },
  parts: Record<'encoder' | 'monolith', StateDict>,
  yaml: Plain | null,
  o: OfficialCheckpointOptions,
  path: string,
  report: OfficialCheckpoint['report'],
): TokenizerConfig {
  const fs = pick(hp, 'first_stage_cfg.params');
  const where = 'hyper_parameters.first_stage_cfg.params';
  const imageSize = pick(fs, 'image_size') ?? 256; // TrainerAutoencoder's defaults
  const scale = pick(fs, 'scale_factor') ?? 1;
  if (typeof imageSize !== 'number' || typeof scale !== 'number' || !(scale > 0))
    throw new Error(`${path}: ${where}: image_size ${imageSize} / scale_factor ${scale} are not valid numbers`);

  const m = parts.monolith;
  const shape = (k: string): number[] => {
    const t = m.get(k);
    if (!t) throw new Error(`${path}: the first stage has no '${PREFIX.monolith}${k}' (not a RepTok monolith?)`);
    return t.shape;
  };
  const count = (re: RegExp): number => new Set([...m.keys()].map((k) => re.exec(k)?.[1]).filter(Boolean)).size;

  // the VAE (diffusers AutoencoderKL under ae.ae.*)
  const vaeKey = (k: string): string => `ae.ae.${k}`;
  const levels = count(/^ae\.ae\.encoder\.down_blocks\.(\d+)\./);
  const blockOutChannels = Array.from(
    { length: levels },
    (_, i) => shape(vaeKey(`encoder.down_blocks.${i}.resnets.0.conv1.weight`))[0]!,
  );
  const gcd = (a: number, b: number): number => (b ? gcd(b, a % b) : a);
  const widthGcd = blockOutChannels.reduce(gcd);
  let groups = 32;
  while (widthGcd % groups) groups--;
  const vae: VaeConfig = {
    ...SD_VAE,
    inChannels: shape(vaeKey('encoder.conv_in.weight'))[1]!,
    outChannels: shape(vaeKey('decoder.conv_out.weight'))[0]!,
    latentChannels: shape(vaeKey('decoder.conv_in.weight'))[1]!,
    blockOutChannels,
    layersPerBlock: count(/^ae\.ae\.encoder\.down_blocks\.0\.resnets\.(\d+)\./),
    normNumGroups: groups,
    // reptok.encoder.encoder.AutoencoderKL's default scale (the VAE config's own scaling_factor is not used)
    scalingFactor: typeof pick(yaml ?? null, 'ae.scale') === 'number' ? (pick(yaml, 'ae.scale') as number) : 0.18215,
    sampleSize: imageSize,
    ...o.vae,
  };
  if (o.vae?.normNumGroups === undefined)
    report.notes.push(
      `the VAE's GroupNorm group count is not stored; assumed ${groups} ` +
        '(the largest of at most 32 dividing every block width)',
    );
  const shift = pick(yaml ?? null, 'ae.shift');
  if (shift !== undefined && shift !== 0) throw new Error(`${o.modelConfig}: model.ae.shift ${shift} is not supported`);

  // the decoder transformer (backbone.*)
  const width = shape('backbone.mid_level.0.self_attn.qkv_proj.weight')[1]!;
  const heads = shape('backbone.mid_level.0.self_attn.scale')[0]!;
  const patchIn = shape('backbone.mid_merge.pre_proj.proj.weight')[1]! / vae.latentChannels;
  const yamlPatch = pick(yaml ?? null, 'backbone.main_level.proj_params.in_params.pre_proj_params.patch_size');
  const side = Math.round(Math.sqrt(patchIn));
  const patchSize = (Array.isArray(yamlPatch) ? yamlPatch : [side, side]) as [number, number];
  if (patchSize[0]! * patchSize[1]! !== patchIn)
    throw new Error(
      `${path}: the decoder's patch embedding takes ${patchIn} values per latent channel, not a square patch; ` +
        'pass the model YAML (modelConfig) that states its patch_size',
    );
  const decoder = {
    width,
    depth: count(/^backbone\.mid_level\.(\d+)\./),
    dHead: width / heads,
    ffExpand: shape('backbone.mid_level.0.ff.down_proj.weight')[1]! / width,
    patchSize,
  };
  const mapping = {
    width: shape('mapping.in_norm.scale')[0]!,
    depth: count(/^mapping\.blocks\.(\d+)\./),
    dFF: shape('mapping.blocks.0.down_proj.weight')[1]!,
  };

  // the encoder: the release's RepTokImageEncoder (fixed 224-pixel input, DINOv2 with registers)
  const encoder = inferDinov2Config(parts.encoder, o.encoder);
  if (!(Number.isInteger(encoder.numHeads) && encoder.numHeads > 0 && encoder.embedDim % encoder.numHeads === 0))
    throw new Error(
      `${path}: the DINOv2 head count is not stored in the file, and ${encoder.numHeads} heads do not split its width ` +
        `${encoder.embedDim}: pass the head count (encoder: { numHeads }, or --encoder-heads N)`,
    );
  if (o.encoder?.numHeads === undefined)
    report.notes.push(
      `the DINOv2 head count is not stored; assumed ${encoder.numHeads} ` +
        '(64-dimensional heads, as in every released DINOv2)',
    );

  const config: TokenizerConfig = {
    encoder,
    encoderInputSize: 224,
    trainable: 'cls',
    newRegisters: shape('encoder.dino.new_reg')[1]!,
    decoder,
    mapping,
    space: 'latent',
    imageSize: [imageSize, imageSize],
    imageChannels: vae.outChannels,
    vae,
    cosWeight: 1,
    timeSampler: { kind: 'logit-normal', loc: 0, scale: 1 },
    tokenScale: scale,
  };
  if (yaml) checkAgainstYaml(config, yaml, o.modelConfig!);
  return config;
}

/** The YAML's literal values must agree with what the weights say (interpolated values are not evaluated). */
function checkAgainstYaml(c: TokenizerConfig, yaml: Plain, file: string): void {
  const f = 2 ** (c.vae!.blockOutChannels.length - 1);
  const checks: [string, unknown][] = [
    ['val_shape', [c.vae!.latentChannels, c.imageSize[0] / f, c.imageSize[1] / f]],
    ['mapping.width', c.mapping.width],
    ['mapping.depth', c.mapping.depth],
    ['encoder.dino.embed_dim', c.encoder.embedDim],
    ['encoder.dino.nr_new_reg', c.newRegisters],
    ['backbone.main_level.width', c.decoder.width],
    ['backbone.main_level.depth', c.decoder.depth],
    ['backbone.main_level.layer_params.d_head', c.decoder.dHead],
  ];
  for (const [key, ours] of checks) {
    const v = pick(yaml, key);
    if (v === undefined || (typeof v === 'string' && v.includes('${'))) continue;
    if (JSON.stringify(v) !== JSON.stringify(ours))
      throw new Error(
        `${file}: model.${key} is ${JSON.stringify(v)} but the checkpoint's weights say ${JSON.stringify(ours)}: ` +
          'this YAML does not describe this checkpoint',
      );
  }
}
