// Every training stage is device-clean: a few training steps (loss, backward, clipping, AdamW, EMA, the teacher's
// update), the periodic validation, the sample pictures and the final evaluation of ssl, tokenizer, generator, t2i
// and classifier run with every tensor factory required to name its device (`withExplicitDevices`), so a tensor
// that stage code would leave on the CPU next to a CUDA model fails here already. Only what loaders produce is made
// outside the check (CPU data, moved by the trainer), and the models are built on the CPU before the check, as the
// trainer builds them before moving them to their device.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { manualSeed, noGrad, tidy, withExplicitDevices } from '../../src/index.ts';
import { cuda } from '../../src/engine/index.ts';
import { deviceFor } from '../../src/cli/device-option.ts';
import { AdamW, EMA, clipGradNorm } from '../../src/optim/index.ts';
import type { StageName } from '../../src/train/presets.ts';
import { sslStage } from '../../src/train/stages/ssl.ts';
import { tokenizerStage } from '../../src/train/stages/tokenizer.ts';
import { generatorStage, t2iStage } from '../../src/train/stages/generator.ts';
import { classifierStage } from '../../src/train/stages/classifier.ts';
import { RepTokTokenizer, saveTokenizer } from '../../src/models/tokenizer.ts';
import { StageContext, type Stage } from '../../src/train/trainer.ts';
import { stageConfig, syntheticFolder, tinyConfigs } from './fixtures.ts';

const tmp = (p: string) => mkdtempSync(join(tmpdir(), p));

const configFor = (stage: StageName, overrides: object): any =>
  stageConfig(stage, { emaDecay: 0.9, clipGrad: 1, ...overrides });

/** Two training steps, validation, samples and (unless `finish` is false) the final evaluation under the check. */
async function explicitDevices(
  config: any,
  factory: (ctx: StageContext<any>) => Promise<Stage<any, any>>,
  o: { finish?: boolean } = {},
): Promise<void> {
  manualSeed(0);
  const ctx = new StageContext<any>(config, tmp('reptok-dev-run-'), { log: () => {}, command: 'test', device: 'cpu' });
  const s = await factory(ctx);
  const params = s.model.parameters().filter((p) => p.requiresGrad);
  const opt = new AdamW(params, { lr: 1e-3 });
  ctx.ema = new EMA(s.emaTarget ?? s.model, config.emaDecay);
  const source = s.batches({ epoch: 0, index: 0 });
  for (let i = 0; i < 2; i++) {
    const batch = await source.next(); // loader data: on the CPU, as the trainer receives it
    ctx.step = i;
    withExplicitDevices(() =>
      tidy(() => {
        const { loss } = s.step(batch, ctx);
        opt.zeroGrad();
        loss.backward();
        clipGradNorm(params, config.clipGrad);
        opt.step();
        s.afterStep?.(ctx);
        ctx.ema!.update();
        assert.ok(Number.isFinite(loss.item()));
      }),
    );
  }
  source.close();
  // the stages' validate/samples/finish compute synchronously before their first await: all of it is checked
  const metrics = await withExplicitDevices(() => s.validate!(ctx));
  assert.ok(Object.values(metrics).every(Number.isFinite), JSON.stringify(metrics));
  if (s.samples) await withExplicitDevices(() => s.samples!(ctx));
  if (o.finish !== false) await withExplicitDevices(() => s.finish!(ctx));
  else await s.finish!(ctx);
  ctx.ema.dispose();
  opt.dispose();
  s.dispose?.();
}

test('ssl (Sinkhorn and EMA centring) creates every tensor on its device while training and validating', async () => {
  const data = `folder:${await syntheticFolder()}`;
  const ssl = tinyConfigs(data).ssl;
  // the final evaluation builds an untrained ViT and the linear probes (on the CPU, then moved), so it runs outside
  await explicitDevices(configFor('ssl', { ...ssl, centering: 'ema' }), sslStage, { finish: false });
  await explicitDevices(configFor('ssl', ssl), sslStage, { finish: false });
});

test('tokenizer and classifier create every tensor on their device', async () => {
  const data = `folder:${await syntheticFolder()}`;
  await explicitDevices(configFor('tokenizer', tinyConfigs(data).tokenizer), tokenizerStage);
  await explicitDevices(configFor('classifier', tinyConfigs(data).classifier), classifierStage);
});

test('generator and t2i (token cache, validation, samples, class consistency) stay on their device', async () => {
  const data = `folder:${await syntheticFolder()}`;
  manualSeed(0);
  const tokCfg = configFor('tokenizer', tinyConfigs(data).tokenizer).tokenizer;
  const tok = noGrad(() => new RepTokTokenizer(tokCfg));
  const tokenizer = join(tmp('reptok-dev-tok-'), 'tokenizer.safetensors');
  saveTokenizer(tokenizer, tok, { data: { classes: ['left', 'right'] } });
  tok.dispose();
  const cfgs = tinyConfigs(data, { tokenizer }) as any;
  const cacheDir = tmp('reptok-dev-cache-');
  await explicitDevices(
    configFor('generator', { ...cfgs.generator, cacheDir, val: { ...cfgs.generator.val, evalSamplesPerClass: 4 } }),
    generatorStage,
  );
  await explicitDevices(configFor('t2i', { ...cfgs.t2i, cacheDir }), t2iStage);
});

test('reptok train --device: cuda[:i] for every stage (cuda = LOCAL_RANK), a clear error without CUDA', () => {
  assert.equal(deviceFor('cpu', 1), 'cpu');
  assert.throws(() => deviceFor('gpu', undefined), /--device gpu: not a device here: use 'cpu', 'cuda' or 'cuda:N'/);
  if (cuda.deviceCount() > 0) {
    assert.equal(deviceFor('cuda', 1), 'cuda:1');
    assert.equal(deviceFor('cuda:0', 1), 'cuda:0');
  } else {
    assert.throws(() => deviceFor('cuda:0', undefined), /--device cuda:0: this libtorch has no CUDA/);
  }
});
