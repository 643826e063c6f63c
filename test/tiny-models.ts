// Tiny random-initialised models of every kind, saved as model files in a temporary folder: what the model-file,
// pipeline and CLI tests load. Seeded, so every run builds the same weights.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { manualSeed, noGrad } from '../src/index.ts';
import { imageArray, type ImageArray } from '../src/data/image-array.ts';
import { Rng } from '../src/data/prng.ts';
import {
  DinoVisionTransformer,
  MLPMixer1D,
  RepTokTokenizer,
  SmallTextEncoder,
  TextToImage,
  WordTokenizer,
  reptokPixel,
  saveEncoder,
  saveGenerator,
  saveTextToImage,
  saveTokenizer,
  smallVit,
  type TrainingInfo,
} from '../src/models/index.ts';

export const TINY_CLASSES = ['circle', 'square', 'triangle'];
export const TINY_CAPTIONS = ['a red circle', 'a blue square', 'a green triangle'];
const training: TrainingInfo = { command: 'test/tiny-models.ts', step: 0 };

export const tinyEncoderConfig = () => smallVit(16, { embedDim: 32, depth: 1, numHeads: 2 });

export const tinyTokenizer = (): RepTokTokenizer =>
  noGrad(
    () =>
      new RepTokTokenizer(
        reptokPixel(32, 3, {
          encoder: tinyEncoderConfig(),
          encoderInputSize: 16,
          imageSize: [16, 16],
          decoder: { width: 32, depth: 1, dHead: 16, ffExpand: 2, patchSize: [4, 4] },
          mapping: { width: 16, depth: 1, dFF: 32 },
        }),
      ),
  ).eval();

const mixer = { nTokens: 1, dim: 32, depth: 1, tokenMlpRatio: 2, channelMlpRatio: 2, dropout: 0 };

export const tinyGenerator = (): MLPMixer1D =>
  noGrad(
    () =>
      new MLPMixer1D({
        ...mixer,
        tokenDim: 32,
        numClasses: TINY_CLASSES.length,
        classDropoutProb: 0.1,
        nExtraTokens: 0,
      }),
  ).eval();

export const tinyTextToImage = (): TextToImage =>
  noGrad(() => {
    const words = WordTokenizer.fromCaptions(TINY_CAPTIONS, { maxLength: 8 });
    const text = new SmallTextEncoder(words, { width: 16, depth: 1, heads: 2, maxLength: 8 });
    return new TextToImage({ ...mixer, tokenDim: 32, heads: 2, textDim: 16, textDropoutProb: 0.1 }, text);
  }).eval();

export interface TinyFiles {
  dir: string;
  encoder: string;
  tokenizer: string;
  generator: string;
  t2i: string;
}

/** Every kind of model file, tiny and random, in a new temporary folder (tokenizer.safetensors, ...). */
export function saveTinyModels(seed = 0): TinyFiles {
  manualSeed(seed);
  const dir = mkdtempSync(join(tmpdir(), 'reptok-tiny-'));
  const files = {
    dir,
    encoder: join(dir, 'encoder.safetensors'),
    tokenizer: join(dir, 'tokenizer.safetensors'),
    generator: join(dir, 'generator.safetensors'),
    t2i: join(dir, 't2i.safetensors'),
  };
  const data = { name: 'synthetic', imageSize: [16, 16] as [number, number], channels: 3 };
  const enc = noGrad(() => new DinoVisionTransformer(tinyEncoderConfig()).initWeights());
  saveEncoder(files.encoder, enc, { data, training });
  const tok = tinyTokenizer();
  saveTokenizer(files.tokenizer, tok, { data: { ...data, classes: TINY_CLASSES }, training });
  const gen = tinyGenerator();
  saveGenerator(files.generator, gen, { data: { ...data, classes: TINY_CLASSES }, training });
  const t2i = tinyTextToImage();
  saveTextToImage(files.t2i, t2i, { data, training });
  for (const m of [enc, tok, gen, t2i]) m.dispose();
  return files;
}

/** n random 3×16×16 images labelled with the tiny classes in turn, captioned with the tiny captions (seeded). */
export function syntheticSplit(n: number, seed: number): ImageArray {
  const rng = new Rng(seed);
  const pixels = Uint8Array.from({ length: n * 3 * 16 * 16 }, () => Math.floor(rng.next() * 256));
  return imageArray(
    pixels,
    [n, 3, 16, 16],
    Array.from({ length: n }, (_, i) => i % 3),
    TINY_CLASSES,
    Array.from({ length: n }, (_, i) => TINY_CAPTIONS[i % 3]!),
  );
}
