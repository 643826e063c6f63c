// Stage `tokenizer` (RepTok stage A): only the encoder's input [cls] embedding trains (by default) together with the
// token adapter, the time mapping and the flow-matching decoder. Latent mode with SD-VAE weights, pixel mode
// otherwise. Validation (src/eval/tokenizer.ts): the flow loss per t-segment and one-token reconstructions (PSNR)
// of held-out images.
import { join } from 'node:path';

import { Generator, Tensor, cat, noGrad, randn, tidy } from '../../engine/index.ts';
import { loadSafetensors } from '../../io/safetensors.ts';
import { RepTokTokenizer, reptokPixel, saveTokenizer, type TokenizerConfig } from '../../models/tokenizer.ts';
import { loadDinov2 } from '../../models/dinov2-weights.ts';
import { DataLoader, type Batch } from '../../data/loader.ts';
import { imagesTensor } from '../../data/image-array.ts';
import { psnr } from '../../eval/metrics.ts';
import { flowLossBySegment, reconstructionPsnr } from '../../eval/tokenizer.ts';
import { COMMON_DEFAULTS, type CommonConfig } from '../config.ts';
import { loadSplits } from '../datasets.ts';
import type { Stage, StageContext } from '../trainer.ts';

export interface TokenizerStageConfig extends CommonConfig {
  stage: 'tokenizer';
  tokenizer: TokenizerConfig;
  /** Encoder weights: an `encoder.safetensors` from `reptok train ssl`, or any DINOv2 checkpoint ('' = random). */
  encoderWeights: string;
  /** SD-VAE weights (diffusers layout) for latent mode. */
  vaeWeights: string;
  hflip: number;
  /** Periodic validation on `images` held-out images; the final test PSNR over `testImages` of them. */
  val: { images: number; steps: number; segments: number; testImages: number };
}

export function tokenizerPreset(
  data: 'fashion-mnist' | 'emoji',
  overrides: Partial<TokenizerStageConfig> = {},
): TokenizerStageConfig {
  const size = data === 'fashion-mnist' ? 28 : 32;
  return {
    ...COMMON_DEFAULTS,
    stage: 'tokenizer',
    data,
    steps: 6000,
    batchSize: 64,
    lr: 5e-4,
    warmupSteps: 300,
    weightDecay: 0.01,
    emaDecay: 0.999,
    tokenizer: reptokPixel(size as 28 | 32, data === 'fashion-mnist' ? 1 : 3),
    encoderWeights: '',
    vaeWeights: '',
    hflip: data === 'emoji' ? 0 : 0.5,
    val: { images: 16, steps: 25, segments: 8, testImages: 256 },
    ...overrides,
  };
}

/**
 * The config as trained: with encoder weights, the encoder's architecture is the file's (its real patch size,
 * width, registers...), read before the config is recorded so that config.json and the exported file say the same.
 */
export function finishTokenizerConfig(c: TokenizerStageConfig): TokenizerStageConfig {
  if (!c.encoderWeights) return c;
  const encoder = loadDinov2(c.encoderWeights);
  encoder.dispose();
  return { ...c, tokenizer: { ...c.tokenizer, encoder: encoder.config } };
}

export async function tokenizerStage(
  ctx: StageContext<TokenizerStageConfig>,
): Promise<Stage<TokenizerStageConfig, Batch>> {
  const c = ctx.config;
  const tcfg = c.tokenizer;
  const [H] = tcfg.imageSize;
  const { train, test } = await loadSplits(c.data, { dataDir: c.dataDir, size: H, log: ctx.log });
  if (train.c !== tcfg.imageChannels && tcfg.space === 'pixel')
    throw new Error(`the data has ${train.c} channel(s), the tokenizer config ${tcfg.imageChannels}`);
  const tok = noGrad(() => new RepTokTokenizer(tcfg));
  if (c.encoderWeights) {
    const encoder = loadDinov2(c.encoderWeights);
    tok.tokenEncoder.loadPretrained(encoder.stateDict());
    encoder.dispose();
  } else {
    ctx.log(
      'warning: no encoderWeights given: the encoder is a random ViT (train one with `reptok train ssl`, or pass ' +
        'DINOv2 weights)',
    );
  }
  if (tcfg.space === 'latent') {
    if (!c.vaeWeights)
      throw new Error('latent space needs SD-VAE weights: --set vaeWeights=<diffusion_pytorch_model.safetensors>');
    tok.vae!.loadStateDict(loadSafetensors(c.vaeWeights).tensors, { context: c.vaeWeights });
  }
  tok.train();
  ctx.log(
    `tokenizer: ${(tok.numParameters({ trainableOnly: true }) / 1e6).toFixed(2)}M trainable of ` +
      `${(tok.numParameters() / 1e6).toFixed(2)}M parameters`,
  );

  // fixed validation material: held-out images and noise
  const valImages = imagesTensor(
    test,
    Int32Array.from({ length: Math.min(c.val.images, test.n) }, (_, i) => i),
  );
  const valGen = new Generator({ seed: c.seed + 1 });
  const valNoise = randn([valImages.shape[0]!, ...tok.gridShape], { generator: valGen });
  const reconstructions = (): Tensor =>
    tok.decode(tok.encode(valImages), { steps: c.val.steps, noise: valNoise }).images;

  return {
    model: tok,
    batches: (position) =>
      new DataLoader(train, {
        batchSize: c.batchSize,
        views: [{ size: H, crop: 'resize', hflip: c.hflip }],
        seed: c.seed,
        prefetch: c.prefetch,
        position,
      }),
    step: (batch) => {
      const out = tok.loss(batch.views[0]!, { generator: ctx.generator });
      return { loss: out.total, metrics: { rf: out.rf.mean().item(), cos: out.cos.mean().item() } };
    },
    validate: async () =>
      ctx.evaluate(tok, () => {
        const segs = flowLossBySegment(tok, valImages, valNoise, c.val.segments, valGen);
        const metrics: Record<string, number> = {
          val_flow: segs.reduce((a, b) => a + b) / segs.length,
          psnr: tidy(() => psnr(reconstructions(), valImages)),
        };
        segs.forEach((v, k) => (metrics[`val_flow_t${k}`] = v));
        return metrics;
      }),
    samples: async () => {
      const pairs = ctx.evaluate(tok, () => tidy(() => cat([valImages, reconstructions()])));
      const path = await ctx.writeSamplePicture(pairs, valImages.shape[0]!);
      pairs.dispose();
      return `${path} (top: held-out images, bottom: their one-token reconstructions)`;
    },
    finish: async () => {
      const path = join(ctx.out, 'tokenizer.safetensors');
      saveTokenizer(path, tok, {
        weights: ctx.ema?.shadow ?? tok.stateDict(),
        data: ctx.dataInfo(train),
        training: ctx.trainingInfo,
      });
      const n = Math.min(c.val.testImages, test.n);
      const testPsnr = ctx.evaluate(tok, () =>
        reconstructionPsnr(tok, test, n, { steps: c.val.steps, seed: c.seed + 2 }),
      );
      ctx.log(
        `exported ${path} (EMA weights); test PSNR ${testPsnr.toFixed(2)} dB over ${n} held-out images ` +
          `(${c.val.steps} Euler steps)`,
      );
      return { tokenizer: path, test_psnr: testPsnr, test_images: n, decode_steps: c.val.steps };
    },
    dispose: () => {
      for (const t of [valImages, valNoise]) t.dispose();
      tok.dispose();
    },
  };
}
