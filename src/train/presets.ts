// Named training presets, one per (data set, stage), and the entry point that runs a stage from a preset, a config
// file and overrides.
import type { CommonConfig } from './config.ts';
import { resolveConfig } from './config.ts';
import { runStage, type RunOptions, type RunResult, type Stage, type StageContext } from './trainer.ts';
import { sslPreset, sslStage, type SslConfig } from './stages/ssl.ts';
import { classifierPreset, classifierStage, type ClassifierStageConfig } from './stages/classifier.ts';
import {
  finishTokenizerConfig,
  tokenizerPreset,
  tokenizerStage,
  type TokenizerStageConfig,
} from './stages/tokenizer.ts';
import {
  generatorPreset,
  generatorStage,
  t2iPreset,
  t2iStage,
  type GeneratorStageConfig,
  type T2IStageConfig,
} from './stages/generator.ts';

export const STAGES = ['ssl', 'tokenizer', 'generator', 't2i', 'classifier'] as const;
export type StageName = (typeof STAGES)[number];

export const PRESETS: Record<string, () => CommonConfig> = {
  'fmnist-ssl': () => sslPreset('fashion-mnist'),
  'fmnist-classifier': () => classifierPreset('fashion-mnist'),
  'fmnist-tokenizer': () => tokenizerPreset('fashion-mnist'),
  'fmnist-generator': () => generatorPreset('fashion-mnist'),
  'emoji-ssl': () => sslPreset('emoji'),
  'emoji-classifier': () => classifierPreset('emoji'),
  'emoji-tokenizer': () => tokenizerPreset('emoji'),
  'emoji-generator': () => generatorPreset('emoji'),
  'emoji-t2i': () => t2iPreset('emoji'),
};

export const presetsFor = (stage: StageName): string[] =>
  Object.entries(PRESETS)
    .filter(([, p]) => p().stage === stage)
    .map(([n]) => n);

/** Each stage: how it finishes its config before the config is recorded (optional), and how it is built. */
const STAGE_IMPL: Record<
  StageName,
  { finishConfig?: (c: any) => CommonConfig; create: (ctx: StageContext<any>) => Promise<Stage<any, any>> }
> = {
  ssl: { create: (ctx) => sslStage(ctx as StageContext<SslConfig>) },
  tokenizer: {
    finishConfig: (c) => finishTokenizerConfig(c as TokenizerStageConfig),
    create: (ctx) => tokenizerStage(ctx as StageContext<TokenizerStageConfig>),
  },
  generator: { create: (ctx) => generatorStage(ctx as StageContext<GeneratorStageConfig>) },
  t2i: { create: (ctx) => t2iStage(ctx as StageContext<T2IStageConfig>) },
  classifier: { create: (ctx) => classifierStage(ctx as StageContext<ClassifierStageConfig>) },
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
  const impl = STAGE_IMPL[stage];
  return runStage(impl.finishConfig?.(config) ?? config, impl.create, o);
}
