// Stages `generator` (RepTok stage B, class-conditional MLP-Mixer) and `t2i` (text-to-image) on tokens of a frozen
// tokenizer, pre-computed once and cached under a content hash. Validation: the flow loss over K equal t-segments on
// held-out tokens; samples: generated tokens decoded by the tokenizer. At the end the class generator also reports
// how often its guided samples land among tokens of the requested class (k-NN on the training tokens), next to the
// same k-NN accuracy of real held-out tokens.
import { mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

import { Generator, Tensor, noGrad, randn, tensor, tidy } from '../../engine/index.ts';
import { saveSafetensors } from '../../io/safetensors.ts';
import { imageGrid, writeImage } from '../../io/image.ts';
import { loadTokenizer, type RepTokTokenizer } from '../../models/tokenizer.ts';
import { GENERATOR_PRESETS, MLPMixer1D, classField, type GeneratorConfig } from '../../models/generator.ts';
import { TextToImage, type T2IConfig } from '../../models/t2i.ts';
import { SmallTextEncoder, type SmallTextConfig } from '../../models/text/small-text-encoder.ts';
import { WordTokenizer } from '../../models/text/word-tokenizer.ts';
import { flowLoss, generate, validationLoss } from '../../flow/token-flow.ts';
import type { GuidableField } from '../../flow/guidance.ts';
import type { TimeSampler } from '../../flow/paths.ts';
import { TokenLoader, tokensFor, type TokenBatch, type TokenSet } from '../../data/tokens.ts';
import { TWEMOJI_CREDIT } from '../../data/emoji.ts';
import { knnAccuracy } from '../../eval/knn.ts';
import { COMMON_DEFAULTS, type CommonConfig } from '../config.ts';
import { loadSplits } from '../datasets.ts';
import type { Stage, StageContext } from '../trainer.ts';

interface SamplingConfig {
  segments: number;
  tokens: number;
  steps: number;
  cfgScale: number;
  interval: [number, number];
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
): Promise<{ tok: RepTokTokenizer; train: TokenSet; test: TokenSet }> {
  if (!c.tokenizerFile)
    throw new Error(
      'set the frozen tokenizer: --set tokenizerFile=<run>/tokenizer.safetensors (from `reptok train tokenizer`)',
    );
  const tok = loadTokenizer(c.tokenizerFile);
  const { train, test } = await loadSplits(c.data, { dataDir: c.dataDir, size: tok.config.imageSize[0], log: ctx.log });
  return {
    tok,
    train: tokensFor(tok, c.tokenizerFile, train, c.cacheDir, ctx.log),
    test: tokensFor(tok, c.tokenizerFile, test, c.cacheDir, ctx.log),
  };
}

/** Validation loss over K segments with fixed noise on the first `count` held-out tokens. */
function validate(
  v: (x: Tensor, t: Tensor, idx: Tensor) => Tensor,
  test: TokenSet,
  val: SamplingConfig,
  seed: number,
): Record<string, number> {
  return tidy(() => {
    const n = Math.min(val.tokens, test.tokens.shape[0]!);
    const idx = tensor(
      Int32Array.from({ length: n }, (_, i) => i),
      { dtype: 'int64' },
    );
    const x1 = test.tokens.slice(0, 0, n).unsqueeze(1);
    const x0 = randn(x1.shape, { generator: new Generator({ seed: seed + 1 }) });
    const { loss, segments } = validationLoss((x, t) => v(x, t, idx), x1, { x0, segments: val.segments });
    const out: Record<string, number> = { val_loss: loss.item() };
    (segments.toArray() as number[]).forEach((s, k) => (out[`val_t${k}`] = s));
    return out;
  });
}

/** Generates tokens with guidance, decodes them and writes one picture to `path`, a row per condition. */
async function writeSamplePicture(
  path: string,
  tok: RepTokTokenizer,
  field: GuidableField,
  rows: number,
  perRow: number,
  val: SamplingConfig,
  seed: number,
  D: number,
): Promise<void> {
  const picture = noGrad(() =>
    tidy(() => {
      const g = new Generator({ seed });
      const { z } = generate(field, randn([rows * perRow, 1, D], { generator: g }), {
        steps: val.steps,
        guidance: { scale: val.cfgScale, interval: val.interval },
      });
      const imgs = tok.decode(z.squeeze(1), { steps: val.steps, generator: g }).images;
      return imageGrid(imgs, { nrow: perRow });
    }),
  );
  mkdirSync(join(path, '..'), { recursive: true });
  await writeImage(path, picture);
  picture.dispose();
}

/** Class labels 0…classes−1, each repeated `perClass` times (int64): the conditioning of per-class sample sets. */
const classLabels = (classes: number, perClass: number): Tensor =>
  tensor(
    Int32Array.from({ length: classes * perClass }, (_, i) => Math.floor(i / perClass)),
    { dtype: 'int64' },
  );

/**
 * Class consistency of guided samples: `perClass` tokens per class, each classified by k-NN (k = 20) among the
 * training tokens; and, for scale, the same k-NN accuracy of the real held-out tokens.
 */
function classConsistency(
  model: MLPMixer1D,
  train: TokenSet,
  test: TokenSet,
  classes: number,
  perClass: number,
  val: SamplingConfig,
  seed: number,
): { sample_class_acc: number; real_token_knn_acc: number; train_tokens: number } {
  return noGrad(() =>
    tidy(() => {
      const [N, D] = train.tokens.shape as [number, number];
      const trainLabels = tensor(train.labels, { dtype: 'int64' });
      const y = classLabels(classes, perClass);
      const x0 = randn([classes * perClass, 1, D], { generator: new Generator({ seed }) });
      const { z } = generate(classField(model, y), x0, {
        steps: val.steps,
        guidance: { scale: val.cfgScale, interval: val.interval },
      });
      return {
        sample_class_acc: knnAccuracy(train.tokens, trainLabels, z.squeeze(1), y, { classes }),
        real_token_knn_acc: knnAccuracy(
          train.tokens,
          trainLabels,
          test.tokens,
          tensor(test.labels, { dtype: 'int64' }),
          { classes },
        ),
        train_tokens: N,
      };
    }),
  );
}

export async function generatorStage(
  ctx: StageContext<GeneratorStageConfig>,
): Promise<Stage<GeneratorStageConfig, TokenBatch>> {
  const c = ctx.config;
  const { tok, train, test } = await tokenData(c, ctx as StageContext<CommonConfig>);
  const D = train.tokens.shape[1]!;
  const classes = Math.max(...train.labels) + 1;
  const model = noGrad(() => new MLPMixer1D({ ...c.generator, tokenDim: D, numClasses: classes }));
  ctx.log(
    `generator: ${(model.numParameters() / 1e6).toFixed(2)}M parameters, ${classes} classes, tokens of width ${D}`,
  );
  const withEma = <T>(fn: () => T): T => (ctx.ema ? ctx.ema.withWeights(fn) : fn());
  const validation = (): Record<string, number> => {
    model.eval();
    const labels = tensor(test.labels, { dtype: 'int64' });
    const out = validate((x, t, idx) => model.forward(x, t, { y: labels.indexSelect(0, idx) }), test, c.val, c.seed);
    labels.dispose();
    return out;
  };
  return {
    model,
    batches: (position) => new TokenLoader(train, c.batchSize, c.seed, position),
    step: (b) => {
      model.train();
      return {
        loss: flowLoss((x, t) => model.forward(x, t, { y: b.y, generator: ctx.generator }), b.x1, {
          generator: ctx.generator,
          sampler: c.timeSampler,
        }).loss,
      };
    },
    validate: async () => withEma(validation),
    samples: async (ctx2) => {
      const path = join(ctx.out, 'samples', `step-${String(ctx2.step + 1).padStart(6, '0')}.png`);
      const rows = Math.min(classes, 10);
      const y = classLabels(rows, c.val.samplesPerClass);
      await withEma(() => {
        model.eval();
        return writeSamplePicture(path, tok, classField(model, y), rows, c.val.samplesPerClass, c.val, c.seed + 3, D);
      });
      y.dispose();
      return `${path} (one row per class)`;
    },
    finish: async () => {
      const path = join(ctx.out, 'generator.safetensors');
      saveSafetensors(path, ctx.ema?.shadow ?? model.stateDict(), {
        format: 'reptok-generator',
        config: JSON.stringify(model.config),
        tokenizerFile: c.tokenizerFile,
        data: c.data,
      });
      ctx.log(`exported ${path} (EMA weights)`);
      const final = withEma(() => ({
        ...validation(),
        ...classConsistency(model, train, test, classes, c.val.evalSamplesPerClass, c.val, c.seed + 4),
      }));
      ctx.log(
        `guided samples in the requested class (k-NN on training tokens): ` +
          `${(100 * final.sample_class_acc).toFixed(1)}% (real held-out tokens: ` +
          `${(100 * final.real_token_knn_acc).toFixed(1)}%)`,
      );
      return { generator: path, ...final };
    },
    dispose: () => {
      model.dispose();
      tok.dispose();
    },
  };
}

export async function t2iStage(ctx: StageContext<T2IStageConfig>): Promise<Stage<T2IStageConfig, TokenBatch>> {
  const c = ctx.config;
  const { tok, train, test } = await tokenData(c, ctx as StageContext<CommonConfig>);
  if (!train.captions) throw new Error(`data set '${c.data}' has no captions; text-to-image needs captioned images`);
  const D = train.tokens.shape[1]!;
  const words = WordTokenizer.fromCaptions(train.captions, { minCount: c.text.minCount, maxLength: c.text.maxLength });
  const text = new SmallTextEncoder(words, c.text);
  const model = noGrad(() => new TextToImage({ ...c.t2i, tokenDim: D, textDim: c.text.width }, text));
  ctx.log(
    `text-to-image: ${(model.numParameters() / 1e6).toFixed(2)}M parameters (text encoder ` +
      `${(text.numParameters() / 1e6).toFixed(2)}M, ${words.vocab.length} words)`,
  );
  const withEma = <T>(fn: () => T): T => (ctx.ema ? ctx.ema.withWeights(fn) : fn());
  const testText = (idx: Tensor) => model.encode((idx.toArray() as number[]).map((i) => test.captions![i]!));
  return {
    model,
    batches: (position) => new TokenLoader(train, c.batchSize, c.seed, position),
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
      withEma(
        () => (
          model.eval(),
          validate((x, t, idx) => model.generator.forward(x, t, testText(idx)), test, c.val, c.seed)
        ),
      ),
    samples: async (ctx2) => {
      const path = join(ctx.out, 'samples', `step-${String(ctx2.step + 1).padStart(6, '0')}.png`);
      const per = 6;
      const prompts = c.val.prompts.flatMap((p) => Array(per).fill(p));
      await withEma(
        () => (
          model.eval(),
          writeSamplePicture(path, tok, model.field(prompts), c.val.prompts.length, per, c.val, c.seed + 3, D)
        ),
      );
      return `${path} (rows: ${c.val.prompts.join(' | ')})`;
    },
    finish: async () => {
      const path = join(ctx.out, 't2i.safetensors');
      saveSafetensors(path, ctx.ema?.shadow ?? model.stateDict(), {
        format: 'reptok-t2i',
        config: JSON.stringify({ t2i: model.generator.config, text: c.text }),
        words: words.toJSON(),
        tokenizerFile: c.tokenizerFile,
        data: c.data,
        ...(c.data.startsWith('emoji') ? { credit: TWEMOJI_CREDIT } : {}),
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
