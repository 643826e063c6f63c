// A tiny synthetic captioned image folder and tiny stage configs for the training tests.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { tensor } from '../../src/index.ts';
import { resolveTrainConfig, type StageName } from '../../src/train/presets.ts';
import { writeImage } from '../../src/io/image.ts';

/**
 * 48 images 16×16 in two classes ('left': a bright square on the left, 'right': on the right), captions in .txt files.
 */
export async function syntheticFolder(): Promise<string> {
  const root = mkdtempSync(join(tmpdir(), 'reptok-data-'));
  for (const cls of ['left', 'right']) {
    mkdirSync(join(root, cls));
    for (let i = 0; i < 24; i++) {
      const px = Array.from({ length: 3 * 16 * 16 }, (_, k) => {
        const [c, y, x] = [Math.floor(k / 256), Math.floor((k % 256) / 16), k % 16];
        const inside = y >= 4 + (i % 4) && y < 10 + (i % 4) && (cls === 'left' ? x >= 1 && x < 7 : x >= 9 && x < 15);
        return inside ? (c === i % 3 ? 1 : 0.2) : -1;
      });
      await writeImage(join(root, cls, `${i}.png`), tensor(px, { shape: [3, 16, 16] }));
      writeFileSync(join(root, cls, `${i}.txt`), `a square on the ${cls} in colour ${['red', 'green', 'blue'][i % 3]}`);
    }
  }
  return root;
}

const encoder = {
  imgSize: 16,
  patchSize: 4,
  inChans: 3,
  embedDim: 32,
  depth: 2,
  numHeads: 2,
  mlpRatio: 2,
  ffn: 'mlp',
  qkvBias: true,
  initValues: 1,
  numRegisterTokens: 2,
  interpolateAntialias: true,
  interpolateOffset: 0,
  layerNormEps: 1e-6,
};
const cacheDir = mkdtempSync(join(tmpdir(), 'reptok-cache-'));
const common = {
  batchSize: 8,
  logEvery: 1,
  valEvery: 1000,
  sampleEvery: 1000,
  checkpointEvery: 1000,
  warmupSteps: 2,
  threads: 1,
  prefetch: 2,
};

export const tinyConfigs = (data: string, files: { encoder?: string; tokenizer?: string } = {}) => ({
  ssl: {
    ...common,
    data,
    encoder,
    imageSize: 16,
    localCrops: 2,
    localSize: 8,
    head: { hidden: 32, bottleneck: 8, outDim: 32 },
    eval: { knnK: 5, probeEpochs: 2, maxTrain: 40, maxTest: 8 },
  },
  tokenizer: {
    ...common,
    data,
    encoderWeights: files.encoder ?? '',
    val: { images: 4, steps: 2, segments: 2 },
    tokenizer: {
      encoder,
      encoderInputSize: 16,
      decoder: { width: 32, depth: 1, dHead: 16, ffExpand: 2, patchSize: [4, 4] },
      mapping: { width: 16, depth: 1, dFF: 32 },
      imageSize: [16, 16],
      imageChannels: 3,
    },
  },
  generator: {
    ...common,
    data,
    cacheDir,
    tokenizerFile: files.tokenizer ?? '',
    generator: { dim: 32, depth: 1 },
    val: { tokens: 4, steps: 2, samplesPerClass: 2, segments: 2 },
  },
  t2i: {
    ...common,
    data,
    cacheDir,
    tokenizerFile: files.tokenizer ?? '',
    t2i: { dim: 32, depth: 1, heads: 2 },
    text: { width: 16, depth: 1, heads: 2, maxLength: 10 },
    val: { tokens: 4, steps: 2, prompts: ['left', 'right'] },
  },
  classifier: {
    ...common,
    data,
    imageSize: 16,
    hflip: 0, // a flip turns 'left' into 'right'
    classifier: { widths: [8, 8, 16] },
    val: { images: 4 },
  },
});

/** `reptok train tokenizer` arguments for a run in `out` from a config file (the CLI tests' tiny tokenizer runs). */
export const tokenizerTrainArgs = (out: string, config: string, ...more: string[]): string[] => [
  'train',
  'tokenizer',
  '--preset',
  'fmnist-tokenizer',
  '--out',
  out,
  '--config',
  config,
  ...more,
];

/** The preset each stage's tests start from. */
const STAGE_PRESETS: Record<StageName, string> = {
  ssl: 'fmnist-ssl',
  tokenizer: 'fmnist-tokenizer',
  generator: 'fmnist-generator',
  t2i: 'emoji-t2i',
  classifier: 'fmnist-classifier',
};

/** A stage's resolved training config: its test preset with `overrides` (through a config file, as users pass them). */
export function stageConfig(stage: StageName, overrides: object): any {
  const file = join(mkdtempSync(join(tmpdir(), 'reptok-cfg-')), 'config.json');
  writeFileSync(file, JSON.stringify(overrides));
  return resolveTrainConfig(stage, STAGE_PRESETS[stage], { file });
}
