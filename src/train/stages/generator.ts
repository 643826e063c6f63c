// Stages `generator` (RepTok stage B, class-conditional MLP-Mixer) and `t2i` (text-to-image) on tokens of a frozen
// tokenizer, pre-computed once and cached under a content hash. Validation (src/eval/generator.ts): the flow loss over
// K equal t-segments on held-out tokens; samples: generated tokens decoded by the tokenizer. At the end the class
// generator also reports how often its guided samples land among tokens of the requested class (k-NN on the training
// tokens), next to the same k-NN accuracy of real held-out tokens.
import { homedir } from 'node:os';
import { join } from 'node:path';

import { Tensor, noGrad, tensor, tidy } from '../../engine/index.ts';
import { loadTokenizer, type RepTokTokenizer } from '../../models/tokenizer.ts';
import {
  GENERATOR_PRESETS,
  MLPMixer1D,
  classField,
  saveGenerator,
  type GeneratorConfig,
} from '../../models/generator.ts';
import { TextToImage, saveTextToImage, type T2IConfig } from '../../models/t2i.ts';
import { SmallTextEncoder, type SmallTextConfig } from '../../models/text/small-text-encoder.ts';
import { WordTokenizer } from '../../models/text/word-tokenizer.ts';
import { flowLoss } from '../../flow/token-flow.ts';
import type { TimeSampler } from '../../flow/paths.ts';
import { TokenLoader, tokensFor, type TokenBatch, type TokenSet } from '../../data/tokens.ts';
import { TWEMOJI_CREDIT } from '../../data/emoji.ts';
import {
  classConsistency,
  classLabels,
  sampleImages,
  segmentedFlowLoss,
  type SamplingOptions,
} from '../../eval/generator.ts';
import { COMMON_DEFAULTS, type CommonConfig } from '../config.ts';
import { loadSplits } from '../datasets.ts';
import type { Stage, StageContext } from '../trainer.ts';
import type { DataInfo } from '../../models/model-file.ts';

/** Validation: the flow loss over `segments` t-segments on `tokens` held-out tokens; samples as in SamplingOptions. */
interface SamplingConfig extends SamplingOptions {
  segments: number;
  tokens: number;
}

export interface GeneratorStageConfig extends CommonConfig {
  stage: 'generator';
  /** The frozen tokenizer's file (`tokenizer.safetensors` from `reptok train tokenizer`). */
  tokenizerFile: string;
  generator: Omit<GeneratorConfig, 'tokenDim' | 'numClasses'>;
  timeSampler: TimeSampler;
  cacheDir: string;
  val: SamplingConfig & { samplesPerClass: number; evalSamplesPerClass: number };
}

export interface T2IStageConfig extends CommonConfig {
  stage: 't2i';
  /** The frozen tokenizer's file, as for the generator stage. */
  tokenizerFile: string;
  t2i: Omit<T2IConfig, 'tokenDim' | 'textDim'>;
  text: SmallTextConfig & { minCount: number };
  timeSampler: TimeSampler;
  cacheDir: string;
  val: SamplingConfig & { prompts: string[] };
}

const sampling: SamplingConfig = { segments: 8, tokens: 512, steps: 25, cfgScale: 1.5, interval: [0.3, 0.9] };
const cacheDir = join(homedir(), '.cache', 'reptok', 'tokens');

export function generatorPreset(
  data: 'fashion-mnist' | 'emoji',
  overrides: Partial<GeneratorStageConfig> = {},
): GeneratorStageConfig {
  const { tokenDim: _t, numClasses: _n, ...mixer } = GENERATOR_PRESETS['mixer-s'];
  return {
    ...COMMON_DEFAULTS,
    stage: 'generator',
    data,
    steps: 6000,
    batchSize: 128,
    lr: 3e-4,
    warmupSteps: 200,
    weightDecay: 0.01,
    emaDecay: 0.999,
    tokenizerFile: '',
    generator: { ...mixer, dim: 384, depth: 6 },
    timeSampler: { kind: 'uniform' },
    cacheDir,
    val: { ...sampling, samplesPerClass: 8, evalSamplesPerClass: 100 },
    ...overrides,
  };
}

export function t2iPreset(data: 'emoji', overrides: Partial<T2IStageConfig> = {}): T2IStageConfig {
  return {
    ...COMMON_DEFAULTS,
    stage: 't2i',
    data,
    steps: 8000,
    batchSize: 128,
    lr: 3e-4,
    warmupSteps: 200,
    weightDecay: 0.01,
    emaDecay: 0.999,
    tokenizerFile: '',
    t2i: {
      nTokens: 1,
      dim: 384,
      depth: 6,
      heads: 6,
      tokenMlpRatio: 3,
      channelMlpRatio: 4,
      textDropoutProb: 0.1,
    },
    text: { width: 128, depth: 2, heads: 4, maxLength: 12, minCount: 1 },
    timeSampler: { kind: 'uniform' },
    cacheDir,
    val: { ...sampling, prompts: ['red heart', 'grinning face', 'cat face', 'flag: France', 'pizza', 'rocket'] },
    ...overrides,
  };
}

/** Shared by both stages: the frozen tokenizer and the tokens of the training and held-out images. */
async function tokenData(
  c: GeneratorStageConfig | T2IStageConfig,
  ctx: StageContext<CommonConfig>,
): Promise<{ tok: RepTokTokenizer; train: TokenSet; test: TokenSet; data: DataInfo }> {
  if (!c.tokenizerFile)
    throw new Error(
      'set the frozen tokenizer: --set tokenizerFile=<run>/tokenizer.safetensors (from `reptok train tokenizer`)',
    );
  // on the training device: it encodes the token cache there and decodes the samples
  const tok = loadTokenizer(c.tokenizerFile).to({ device: ctx.device });
  const { train, test } = await loadSplits(c.data, { dataDir: c.dataDir, size: tok.config.imageSize[0], log: ctx.log });
  return {
    tok,
    data: ctx.dataInfo(train),
    train: tokensFor(tok, c.tokenizerFile, train, c.cacheDir, ctx.log, ctx.shard),
    test: tokensFor(tok, c.tokenizerFile, test, c.cacheDir, ctx.log, ctx.shard),
  };
}

export async function generatorStage(
  ctx: StageContext<GeneratorStageConfig>,
): Promise<Stage<GeneratorStageConfig, TokenBatch>> {
  const c = ctx.config;
  const { tok, train, test, data } = await tokenData(c, ctx as StageContext<CommonConfig>);
  const D = train.tokens.shape[1]!;
  const classes = Math.max(...train.labels) + 1;
  const model = noGrad(() => new MLPMixer1D({ ...c.generator, tokenDim: D, numClasses: classes }));
  ctx.log(
    `generator: ${(model.numParameters() / 1e6).toFixed(2)}M parameters, ${classes} classes, tokens of width ${D}`,
  );
  const { device } = ctx;
  const testLabels = tensor(test.labels, { dtype: 'int64', device });
  const validation = (): Record<string, number> =>
    segmentedFlowLoss((x, t, idx) => model.forward(x, t, { y: testLabels.indexSelect(0, idx) }), test.tokens, {
      count: c.val.tokens,
      segments: c.val.segments,
      seed: c.seed + 1,
      device,
    });
  return {
    model,
    batches: (position) => new TokenLoader(train, c.batchSize, c.seed, position, ctx.shard),
    step: (b) => {
      model.train();
      return {
        loss: flowLoss((x, t) => model.forward(x, t, { y: b.y, generator: ctx.generator }), b.x1, {
          generator: ctx.generator,
          sampler: c.timeSampler,
        }).loss,
      };
    },
    validate: async () => ctx.evaluate(model, validation),
    samples: async () => {
      const per = c.val.samplesPerClass;
      const images = ctx.evaluate(model, () =>
        tidy(() => {
          const y = classLabels(Math.min(classes, 10), per, device);
          return sampleImages(tok, classField(model, y), y.shape[0]!, c.val, c.seed + 3);
        }),
      );
      const path = await ctx.writeSamplePicture(images, per);
      images.dispose();
      return `${path} (one row per class)`;
    },
    finish: async () => {
      const path = join(ctx.out, 'generator.safetensors');
      saveGenerator(path, model, {
        weights: ctx.ema?.shadow ?? model.stateDict(),
        data: { ...data, classes: data.classes?.slice(0, classes) },
        training: ctx.trainingInfo,
        extra: { tokenizerFile: c.tokenizerFile },
      });
      ctx.log(`exported ${path} (EMA weights)`);
      const final = ctx.evaluate(model, () => ({
        ...validation(),
        ...classConsistency(model, train, test, c.val.evalSamplesPerClass, c.val, c.seed + 4),
      }));
      ctx.log(
        `guided samples in the requested class (k-NN on training tokens): ` +
          `${(100 * final.sample_class_acc).toFixed(1)}% (real held-out tokens: ` +
          `${(100 * final.real_token_knn_acc).toFixed(1)}%)`,
      );
      return { generator: path, ...final };
    },
    dispose: () => {
      testLabels.dispose();
      model.dispose();
      tok.dispose();
    },
  };
}

export async function t2iStage(ctx: StageContext<T2IStageConfig>): Promise<Stage<T2IStageConfig, TokenBatch>> {
  const c = ctx.config;
  const { tok, train, test, data } = await tokenData(c, ctx as StageContext<CommonConfig>);
  if (!train.captions) throw new Error(`data set '${c.data}' has no captions; text-to-image needs captioned images`);
  const D = train.tokens.shape[1]!;
  const words = WordTokenizer.fromCaptions(train.captions, { minCount: c.text.minCount, maxLength: c.text.maxLength });
  const text = new SmallTextEncoder(words, c.text);
  const model = noGrad(() => new TextToImage({ ...c.t2i, tokenDim: D, textDim: c.text.width }, text));
  ctx.log(
    `text-to-image: ${(model.numParameters() / 1e6).toFixed(2)}M parameters (text encoder ` +
      `${(text.numParameters() / 1e6).toFixed(2)}M, ${words.vocab.length} words)`,
  );
  const testText = (idx: Tensor) => model.encode((idx.toArray() as number[]).map((i) => test.captions![i]!));
  return {
    model,
    batches: (position) => new TokenLoader(train, c.batchSize, c.seed, position, ctx.shard),
    step: (b) => {
      model.train();
      const enc = model.encode(b.captions, { train: true, generator: ctx.generator });
      return {
        loss: flowLoss((x, t) => model.generator.forward(x, t, enc), b.x1, {
          generator: ctx.generator,
          sampler: c.timeSampler,
        }).loss,
      };
    },
    validate: async () =>
      ctx.evaluate(model, () =>
        segmentedFlowLoss((x, t, idx) => model.generator.forward(x, t, testText(idx)), test.tokens, {
          count: c.val.tokens,
          segments: c.val.segments,
          seed: c.seed + 1,
          device: ctx.device,
        }),
      ),
    samples: async () => {
      const per = 6;
      const prompts = c.val.prompts.flatMap((p) => Array<string>(per).fill(p));
      const images = ctx.evaluate(model, () =>
        sampleImages(tok, model.field(prompts), prompts.length, c.val, c.seed + 3),
      );
      const path = await ctx.writeSamplePicture(images, per);
      images.dispose();
      return `${path} (rows: ${c.val.prompts.join(' | ')})`;
    },
    finish: async () => {
      const path = join(ctx.out, 't2i.safetensors');
      saveTextToImage(path, model, {
        weights: ctx.ema?.shadow ?? model.stateDict(),
        data,
        training: ctx.trainingInfo,
        extra: { tokenizerFile: c.tokenizerFile, ...(c.data.startsWith('emoji') ? { credit: TWEMOJI_CREDIT } : {}) },
      });
      ctx.log(`exported ${path} (EMA weights)`);
      return { t2i: path };
    },
    dispose: () => {
      model.dispose();
      tok.dispose();
    },
  };
}
