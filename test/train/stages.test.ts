// Every stage learns: the loss falls on a fixed batch (tiny configurations on a synthetic image folder; for the
// self-supervised stage the teacher stays fixed, so the student's fit to it is what falls), and the stages chain
// through their exported files (encoder -> tokenizer -> generator / text-to-image).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { manualSeed, tidy } from '../../src/index.ts';
import { AdamW } from '../../src/optim/index.ts';
import { train, type StageName } from '../../src/train/presets.ts';
import { sslStage } from '../../src/train/stages/ssl.ts';
import { tokenizerStage } from '../../src/train/stages/tokenizer.ts';
import { generatorStage, t2iStage } from '../../src/train/stages/generator.ts';
import { StageContext, type Stage } from '../../src/train/trainer.ts';
import { peekModelFile } from '../../src/models/index.ts';
import { stageConfig, syntheticFolder, tinyConfigs } from './fixtures.ts';

async function fitsFixedBatch(
  stage: StageName,
  config: any,
  factory: (ctx: StageContext<any>) => Promise<Stage<any, any>>,
  steps: number,
): Promise<[number, number]> {
  manualSeed(0);
  const ctx = new StageContext<any>(config, mkdtempSync(join(tmpdir(), `reptok-${stage}-`)), {
    log: () => {},
    command: 'test',
  });
  const s = await factory(ctx);
  const source = s.batches({ epoch: 0, index: 0 });
  const batch = await source.next();
  source.close();
  const opt = new AdamW(
    s.model.parameters().filter((p) => p.requiresGrad),
    { lr: 3e-3, weightDecay: 0 },
  );
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    ctx.step = i;
    ctx.generator.manualSeed(1); // the same noise and times every step: only the weights change
    losses.push(
      tidy(() => {
        const { loss } = s.step(batch, ctx);
        opt.zeroGrad();
        loss.backward();
        opt.step();
        return loss.item();
      }),
    );
  }
  s.dispose?.();
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  return [mean(losses.slice(0, 3)), mean(losses.slice(-3))];
}

test('every stage lowers its loss on a fixed batch, and the stages chain through their exports', async () => {
  const data = `folder:${await syntheticFolder()}`;
  const run = async (stage: StageName, files: object = {}, overrides: object = {}) => {
    const out = mkdtempSync(join(tmpdir(), `reptok-run-${stage}-`));
    const r = await train(stage, stageConfig(stage, { ...(tinyConfigs(data, files) as any)[stage], ...overrides }), {
      out,
      steps: 2,
      log: () => {},
    });
    return r.final!;
  };
  const cfgs = (files: object = {}) => tinyConfigs(data, files) as any;

  const [s0, s1] = await fitsFixedBatch('ssl', stageConfig('ssl', cfgs().ssl), sslStage, 25);
  assert.ok(s1 < s0, `ssl loss ${s0} -> ${s1}`);
  const ssl = await run('ssl');
  assert.ok(typeof ssl.knn_ssl === 'number' && typeof ssl.knn_pixels === 'number');

  const [t0, t1] = await fitsFixedBatch(
    'tokenizer',
    stageConfig('tokenizer', cfgs({ encoder: ssl.encoder }).tokenizer),
    tokenizerStage,
    25,
  );
  assert.ok(t1 < 0.8 * t0, `tokenizer loss ${t0} -> ${t1}`);
  // the config names another patch size than the encoder file has: the stage finishes its config from the file
  // before recording it, so config.json and the exported tokenizer describe what was trained
  const tcfg = cfgs().tokenizer.tokenizer;
  const tok = await run(
    'tokenizer',
    { encoder: ssl.encoder },
    { tokenizer: { ...tcfg, encoder: { ...tcfg.encoder, patchSize: 8 } } },
  );
  assert.ok(Number.isFinite(tok.test_psnr as number));
  const recorded = JSON.parse(readFileSync(join(dirname(tok.tokenizer as string), 'config.json'), 'utf8'));
  assert.equal(recorded.tokenizer.encoder.patchSize, 4);
  assert.equal(peekModelFile<any>(tok.tokenizer as string).config.encoder.patchSize, 4);

  const [g0, g1] = await fitsFixedBatch(
    'generator',
    stageConfig('generator', cfgs({ tokenizer: tok.tokenizer }).generator),
    generatorStage,
    25,
  );
  assert.ok(g1 < 0.8 * g0, `generator loss ${g0} -> ${g1}`);
  const [x0, x1] = await fitsFixedBatch(
    't2i',
    stageConfig('t2i', cfgs({ tokenizer: tok.tokenizer }).t2i),
    t2iStage,
    25,
  );
  assert.ok(x1 < 0.8 * x0, `t2i loss ${x0} -> ${x1}`);
  const gen = await run('generator', { tokenizer: tok.tokenizer });
  assert.match(String(gen.generator), /generator\.safetensors$/);
  // every exported model describes itself: architecture, data (with class names), training command and step
  for (const [kind, file] of [
    ['encoder', ssl.encoder],
    ['tokenizer', tok.tokenizer],
    ['generator', gen.generator],
  ] as const) {
    const d = peekModelFile<any>(file as string, kind);
    assert.deepEqual([d.data.imageSize, d.data.channels, d.data.valueRange], [[16, 16], 3, [-1, 1]], kind);
    assert.deepEqual(d.data.classes, ['left', 'right'], kind);
    assert.equal(d.training?.step, 2, kind);
    assert.equal((d.training?.config as any)?.stage, kind === 'encoder' ? 'ssl' : kind);
  }
  assert.equal(peekModelFile<any>(tok.tokenizer as string).config.encoder.embedDim, 32);
  const acc = gen.sample_class_acc as number;
  assert.ok(acc >= 0 && acc <= 1 && (gen.real_token_knn_acc as number) >= 0);

  // bf16 autocast runs every stage end to end (norms after bf16 matmuls, losses in float32)
  const bf16 = { precision: 'bf16' };
  assert.ok(typeof (await run('ssl', {}, bf16)).knn_ssl === 'number');
  assert.ok(Number.isFinite((await run('tokenizer', { encoder: ssl.encoder }, bf16)).test_psnr as number));
  assert.match(
    String((await run('generator', { tokenizer: tok.tokenizer }, bf16)).generator),
    /generator\.safetensors$/,
  );
  assert.ok(await run('t2i', { tokenizer: tok.tokenizer }, bf16));
});
