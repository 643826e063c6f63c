// npm run bench:stages — training throughput (images/s, or tokens/s for the generator stages) of every stage's
// preset on this machine: forward + backward + AdamW per step, data from the stage's own loader, in the precision
// `reptok train` would use (the preset's, `auto` resolved as at the start of a run). JSON lines.
//   --stages ssl,tokenizer,generator   --steps 5   --precision auto|fp32|bf16 (default: each preset's)
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { getNumThreads, manualSeed, tidy } from '../src/index.ts';
import { AdamW } from '../src/optim/index.ts';
import { PRESETS, train, type StageName } from '../src/train/presets.ts';
import { sslStage } from '../src/train/stages/ssl.ts';
import { tokenizerStage } from '../src/train/stages/tokenizer.ts';
import { generatorStage } from '../src/train/stages/generator.ts';
import { isPrecisionSetting, mergeConfig, PRECISIONS, type Json } from '../src/train/config.ts';
import { resolvePrecision, withAutocast } from '../src/train/autocast.ts';
import { StageContext, type Stage } from '../src/train/trainer.ts';
import { benchArgs, emit, median } from './peer.ts';

const args = benchArgs();
const stages = args.get('stages', 'ssl,tokenizer,generator').split(',') as StageName[];
const steps = Number(args.get('steps', '5'));
const precisionArg = args.get('precision', '');
if (precisionArg && !isPrecisionSetting(precisionArg))
  throw new Error(`--precision must be one of ${PRECISIONS.join(', ')}, got '${precisionArg}'`);
const log = () => {};
const factories: Partial<Record<StageName, (ctx: StageContext<any>) => Promise<Stage<any, any>>>> = {
  ssl: sslStage,
  tokenizer: tokenizerStage,
  generator: generatorStage,
};

async function measure(stage: StageName, preset: string, overrides: Record<string, Json>): Promise<void> {
  manualSeed(0);
  const merged = mergeConfig(PRESETS[preset]!(), overrides, preset) as any;
  const precision = resolvePrecision(precisionArg || merged.precision);
  const config = { ...merged, precision };
  const ctx = new StageContext<any>(config, mkdtempSync(join(tmpdir(), 'reptok-bench-')), {
    log,
    command: 'npm run bench:stages',
  });
  const s = await factories[stage]!(ctx);
  const source = s.batches({ epoch: 0, index: 0 });
  const opt = new AdamW(
    s.model.parameters().filter((p) => p.requiresGrad),
    { lr: 1e-4 },
  );
  const times: number[] = [];
  for (let i = 0; i < steps + 1; i++) {
    const batch = await source.next();
    const t0 = performance.now();
    tidy(() => {
      const { loss } = withAutocast(precision, () => s.step(batch, ctx));
      opt.zeroGrad();
      loss.backward();
      opt.step();
    });
    s.afterStep?.(ctx);
    if (i > 0) times.push((performance.now() - t0) / 1000);
  }
  source.close();
  const sec = median(times);
  emit({
    bench: 'train_stage',
    stage,
    preset,
    batch: config.batchSize,
    step_s: sec,
    items_per_s: config.batchSize / sec,
    unit: stage === 'generator' ? 'tokens' : 'images',
    precision,
    threads: getNumThreads(),
  });
  s.dispose?.();
}

const work = mkdtempSync(join(tmpdir(), 'reptok-bench-chain-'));
for (const stage of stages) {
  if (stage === 'ssl') await measure('ssl', 'fmnist-ssl', {});
  if (stage === 'tokenizer') await measure('tokenizer', 'fmnist-tokenizer', {});
  if (stage === 'generator') {
    // the generator needs a tokenizer: a 2-step one is enough to time the generator itself
    const tok = join(work, 'tok');
    await train(
      'tokenizer',
      mergeConfig(PRESETS['fmnist-tokenizer']!(), { steps: 2, valEvery: 1000, sampleEvery: 1000 }, 'bench') as any,
      { out: tok, log, force: true },
    );
    await measure('generator', 'fmnist-generator', {
      tokenizer: join(tok, 'tokenizer.safetensors'),
      cacheDir: join(work, 'cache'),
    });
  }
}
