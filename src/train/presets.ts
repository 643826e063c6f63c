// Named training presets, one per (data set, stage), and the entry point that runs a stage from a preset, a config
// file and overrides.
import type { CommonConfig } from './config.ts';
import { resolveConfig } from './config.ts';
import { runStage, type RunOptions, type RunResult, type Stage, type StageContext } from './trainer.ts';
import { sslPreset, sslStage, type SslConfig } from './stages/ssl.ts';
import { tokenizerPreset, tokenizerStage, type TokenizerStageConfig } from './stages/tokenizer.ts';
import {
  generatorPreset,
  generatorStage,
  t2iPreset,
  t2iStage,
  type GeneratorStageConfig,
  type T2IStageConfig,
} from './stages/generator.ts';

export const STAGES = ['ssl', 'tokenizer', 'generator', 't2i'] as const;
export type StageName = (typeof STAGES)[number];

export const PRESETS: Record<string, () => CommonConfig> = {
  'fmnist-ssl': () => sslPreset('fashion-mnist'),
  'fmnist-tokenizer': () => tokenizerPreset('fashion-mnist'),
  'fmnist-generator': () => generatorPreset('fashion-mnist'),
  'emoji-ssl': () => sslPreset('emoji'),
  'emoji-tokenizer': () => tokenizerPreset('emoji'),
  'emoji-generator': () => generatorPreset('emoji'),
  'emoji-t2i': () => t2iPreset('emoji'),
};

export const presetsFor = (stage: StageName): string[] =>
  Object.entries(PRESETS)
    .filter(([, p]) => p().stage === stage)
    .map(([n]) => n);

const STAGE_IMPL: Record<StageName, (ctx: StageContext<any>) => Promise<Stage<any, any>>> = {
  ssl: (ctx) => sslStage(ctx as StageContext<SslConfig>),
  tokenizer: (ctx) => tokenizerStage(ctx as StageContext<TokenizerStageConfig>),
  generator: (ctx) => generatorStage(ctx as StageContext<GeneratorStageConfig>),
  t2i: (ctx) => t2iStage(ctx as StageContext<T2IStageConfig>),
};

export function resolveTrainConfig(
  stage: StageName,
  preset: string,
  o: { file?: string; sets?: string[] } = {},
): CommonConfig {
  const make = PRESETS[preset];
  if (!make) throw new Error(`unknown preset '${preset}'; presets for '${stage}': ${presetsFor(stage).join(', ')}`);
  const base = make();
  if (base.stage !== stage)
    throw new Error(
      `preset '${preset}' trains stage '${base.stage}', not '${stage}'; presets for '${stage}': ` +
        `${presetsFor(stage).join(', ')}`,
    );
  return resolveConfig(base, o);
}

export async function train(stage: StageName, config: CommonConfig, o: RunOptions): Promise<RunResult> {
  return runStage(
    config,
    async (ctx) => {
      const s = await STAGE_IMPL[stage](ctx);
      return s;
    },
    o,
  );
}
