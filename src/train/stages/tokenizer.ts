// Stage `tokenizer` (RepTok stage A): only the encoder's input [cls] embedding trains (by default) together with the
// token adapter, the time mapping and the flow-matching decoder. Latent mode with SD-VAE weights, pixel mode
// otherwise. Validation: the flow loss per t-segment and one-token reconstructions (PSNR) of held-out images.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { Generator, Tensor, cat, full, noGrad, randn, tidy } from '../../engine/index.ts';
import { loadSafetensors, SafetensorsFile } from '../../io/safetensors.ts';
import { imageGrid, writeImage } from '../../io/image.ts';
import { loadStateDictFile } from '../../io/checkpoint-file.ts';
import { RepTokTokenizer, reptokPixel, saveTokenizer, type TokenizerConfig } from '../../models/tokenizer.ts';
import { inferDinov2Config, toOfficialLayout } from '../../models/dinov2-weights.ts';
import { decoderPath, perSampleMse } from '../../flow/paths.ts';
import { DataLoader, type Batch } from '../../data/loader.ts';
import { imagesTensor } from '../../data/image-array.ts';
import { psnr } from '../../eval/metrics.ts';
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

/** The encoder config stored with weights we exported, else read from the weights' shapes. */
export function encoderConfigFor(path: string, weights: Map<string, Tensor>): TokenizerConfig['encoder'] {
  const f = SafetensorsFile.open(path);
  const meta = f.metadata;
  f.close();
  return meta.config ? JSON.parse(meta.config) : inferDinov2Config(weights);
}

export async function tokenizerStage(
  ctx: StageContext<TokenizerStageConfig>,
): Promise<Stage<TokenizerStageConfig, Batch>> {
  const c = ctx.config;
  let tcfg = c.tokenizer;
  let encoderSd: Map<string, Tensor> | null = null;
  if (c.encoderWeights) {
    encoderSd = toOfficialLayout(loadStateDictFile(c.encoderWeights));
    const enc = c.encoderWeights.endsWith('.safetensors')
      ? encoderConfigFor(c.encoderWeights, encoderSd)
      : inferDinov2Config(encoderSd);
    tcfg = { ...tcfg, encoder: enc };
  } else {
    ctx.log(
      'warning: no encoderWeights given: the encoder is a random ViT (train one with `reptok train ssl`, or pass ' +
        'DINOv2 weights)',
    );
  }
  const [H] = tcfg.imageSize;
  const { train, test } = await loadSplits(c.data, { dataDir: c.dataDir, size: H, log: ctx.log });
  if (train.c !== tcfg.imageChannels && tcfg.space === 'pixel')
    throw new Error(`the data has ${train.c} channel(s), the tokenizer config ${tcfg.imageChannels}`);
  const tok = noGrad(() => new RepTokTokenizer(tcfg));
  if (encoderSd) tok.tokenEncoder.loadPretrained(encoderSd);
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

  // fixed validation material: held-out images, noise and times
  const valImages = imagesTensor(
    test,
    Int32Array.from({ length: Math.min(c.val.images, test.n) }, (_, i) => i),
  );
  const valGen = new Generator({ seed: c.seed + 1 });
  const valNoise = randn([valImages.shape[0]!, ...tok.gridShape], { generator: valGen });
  const samplesDir = join(ctx.out, 'samples');

  const reconstruct = (images: Tensor): Tensor =>
    tidy(
      () =>
        tok.decode(tok.encode(images), { steps: c.val.steps, noise: valNoise.slice(0, 0, images.shape[0]!) }).images,
    );
  const withEma = <T>(fn: () => T): T => (ctx.ema ? ctx.ema.withWeights(fn) : fn());

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
      withEma(() =>
        noGrad(() =>
          tidy(() => {
            tok.eval();
            // flow loss at the midpoints of K equal t-segments, same noise each time
            const grid = tok.toGrid(valImages, valGen);
            const token = tok.encode(valImages);
            const cond = tok.condition(token);
            const K = c.val.segments;
            const segs = Array.from({ length: K }, (_, k) => {
              const t = full([grid.shape[0]!], (k + 0.5) / K);
              return perSampleMse(
                tok.velocity(decoderPath.interpolate(grid, valNoise, t), t, cond),
                decoderPath.target(grid, valNoise),
              )
                .mean()
                .item();
            });
            const metrics: Record<string, number> = {
              val_flow: segs.reduce((a, b) => a + b) / K,
              psnr: psnr(reconstruct(valImages), valImages),
            };
            segs.forEach((v, k) => (metrics[`val_flow_t${k}`] = v));
            tok.train();
            return metrics;
          }),
        ),
      ),
    samples: async (ctx2) => {
      mkdirSync(samplesDir, { recursive: true });
      const path = join(samplesDir, `step-${String(ctx2.step + 1).padStart(6, '0')}.png`);
      const picture = withEma(() =>
        noGrad(() =>
          tidy(() => {
            tok.eval();
            const rec = reconstruct(valImages);
            tok.train();
            return imageGrid(cat([valImages, rec]), { nrow: valImages.shape[0]! });
          }),
        ),
      );
      await writeImage(path, picture);
      picture.dispose();
      return `${path} (top: held-out images, bottom: their one-token reconstructions)`;
    },
    finish: async () => {
      const path = join(ctx.out, 'tokenizer.safetensors');
      saveTokenizer(path, tok, ctx.ema?.shadow ?? tok.stateDict(), {
        source: 'reptok train tokenizer',
        data: c.data,
        steps: String(c.steps),
      });
      const final = await withEma(() =>
        noGrad(() =>
          tidy(() => {
            tok.eval();
            const n = Math.min(c.val.testImages, test.n);
            const scores: number[] = [];
            for (let i = 0; i < n; i += 64) {
              const imgs = imagesTensor(
                test,
                Int32Array.from({ length: Math.min(64, n - i) }, (_, k) => i + k),
              );
              const noise = randn([imgs.shape[0]!, ...tok.gridShape], {
                generator: new Generator({ seed: c.seed + 2 + i }),
              });
              scores.push(
                psnr(tok.decode(tok.encode(imgs), { steps: c.val.steps, noise }).images, imgs) * imgs.shape[0]!,
              );
            }
            return { test_psnr: scores.reduce((a, b) => a + b) / n, test_images: n, decode_steps: c.val.steps };
          }),
        ),
      );
      ctx.log(
        `exported ${path} (EMA weights); test PSNR ${final.test_psnr.toFixed(2)} dB over ${final.test_images} ` +
          `held-out images (${c.val.steps} Euler steps)`,
      );
      return { tokenizer: path, ...final };
    },
    dispose: () => {
      for (const t of [valImages, valNoise]) t.dispose();
      tok.dispose();
    },
  };
}
