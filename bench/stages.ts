// npm run bench:stages — training throughput (images/s, or tokens/s for the generator stages) of every stage's
// preset on this machine: forward + backward + AdamW per step, data from the stage's own loader. JSON lines.
//   --stages ssl,tokenizer,generator   --steps 5   --data fashion-mnist
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { getNumThreads, manualSeed, tidy } from '../src/index.ts';
import { AdamW } from '../src/optim/index.ts';
import { PRESETS, train, type StageName } from '../src/train/presets.ts';
import { sslStage } from '../src/train/stages/ssl.ts';
import { tokenizerStage } from '../src/train/stages/tokenizer.ts';
import { generatorStage } from '../src/train/stages/generator.ts';
import { mergeConfig, type Json } from '../src/train/config.ts';
import { StageContext, type Stage } from '../src/train/trainer.ts';
import { benchArgs, emit, median } from './peer.ts';

const args = benchArgs();
const stages = args.get('stages', 'ssl,tokenizer,generator').split(',') as StageName[];
const steps = Number(args.get('steps', '5'));
const log = () => {};
const factories: Partial<Record<StageName, (ctx: StageContext<any>) => Promise<Stage<any, any>>>> = {
  ssl: sslStage,
  tokenizer: tokenizerStage,
  generator: generatorStage,
};

async function measure(stage: StageName, preset: string, overrides: Record<string, Json>): Promise<void> {
  manualSeed(0);
  const config = mergeConfig(PRESETS[preset]!(), overrides, preset) as any;
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
      const { loss } = s.step(batch, ctx);
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
