// Data sets of pre-computed tokens for the generator stages: every image encoded once by a frozen tokenizer, cached
// on disk under a content hash of the tokenizer's weights and the images, so a changed tokenizer (or data) never
// reuses stale tokens.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { Tensor, cat, noGrad, tensor, tidy } from '../engine/index.ts';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.ts';
import type { RepTokTokenizer } from '../models/tokenizer.ts';
import { batchIndices, nextPosition, batchesPerEpoch, type BatchPosition } from './batches.ts';
import { imagesTensor, type ImageArray } from './image-array.ts';

export interface TokenSet {
  tokens: Tensor; // (N, D)
  labels: Int32Array;
  captions?: string[];
}

const sha = (...parts: (string | Uint8Array)[]): string => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
};

/** Tokens of every image of `data` under the tokenizer saved at `tokenizerPath`, from the cache when present. */
export function tokensFor(
  tok: RepTokTokenizer,
  tokenizerPath: string,
  data: ImageArray,
  cacheDir: string,
  log: (m: string) => void = () => {},
): TokenSet {
  const key = sha(sha(readFileSync(tokenizerPath)), `${data.n}x${data.c}x${data.h}x${data.w}`, sha(data.pixels)).slice(
    0,
    20,
  );
  const file = join(cacheDir, `tokens-${key}.safetensors`);
  let tokens: Tensor;
  if (existsSync(file)) {
    tokens = loadSafetensors(file).tensors.get('tokens')!;
    log(`tokens: ${file} (cached)`);
  } else {
    const t0 = performance.now();
    tokens = noGrad(() =>
      tidy(() => {
        const parts: Tensor[] = [];
        for (let i = 0; i < data.n; i += 256)
          parts.push(
            tidy(() =>
              tok.encode(
                imagesTensor(
                  data,
                  Int32Array.from({ length: Math.min(256, data.n - i) }, (_, k) => i + k),
                ),
              ),
            ),
          );
        return cat(parts);
      }),
    );
    mkdirSync(cacheDir, { recursive: true });
    saveSafetensors(file, { tokens }, { tokenizerFile: tokenizerPath, images: String(data.n) });
    log(`tokens: encoded ${data.n} images in ${((performance.now() - t0) / 1000).toFixed(1)} s -> ${file}`);
  }
  return { tokens, labels: data.labels, captions: data.captions };
}

export interface TokenBatch extends BatchPosition {
  x1: Tensor; // (B, 1, D)
  y: Tensor; // (B) int64
  captions: string[];
  waitMs: number;
}

/** Shuffled batches of tokens (seeded like the image loader; main thread: gathering rows costs microseconds). */
export class TokenLoader {
  #position: BatchPosition;
  constructor(
    private readonly set: TokenSet,
    private readonly batchSize: number,
    private readonly seed: number,
    position: BatchPosition = { epoch: 0, index: 0 },
  ) {
    if (batchesPerEpoch(set.tokens.shape[0]!, batchSize) === 0)
      throw new Error(`${set.tokens.shape[0]} tokens are fewer than one batch of ${batchSize}`);
    this.#position = position;
  }
  get position(): BatchPosition {
    return { ...this.#position };
  }
  async next(): Promise<TokenBatch> {
    const p = this.#position;
    const n = this.set.tokens.shape[0]!;
    const idx = batchIndices(n, this.batchSize, this.seed, p);
    this.#position = nextPosition(p, n, this.batchSize);
    const it = tensor(idx, { dtype: 'int64' });
    const x1 = this.set.tokens.indexSelect(0, it).unsqueeze(1);
    it.dispose();
    return {
      ...p,
      x1,
      y: tensor(
        Int32Array.from(idx, (i) => this.set.labels[i]!),
        { dtype: 'int64' },
      ),
      captions: Array.from(idx, (i) => this.set.captions?.[i] ?? ''),
      waitMs: 0,
    };
  }
  close(): void {}
}
