// Data sets of pre-computed tokens for the generator stages: every image encoded once by a frozen tokenizer, cached
// on disk under a content hash of the tokenizer's weights and the images, so a changed tokenizer (or data) never
// reuses stale tokens. Data-parallel ranks encode and write one part each (tokens-<key>.part-R-of-W.safetensors).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

import { Tensor, cat, noGrad, tensor, tidy, zeros } from '../engine/index.ts';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.ts';
import type { RepTokTokenizer } from '../models/tokenizer.ts';
import {
  SINGLE,
  checkPosition,
  localBatchSize,
  nextPosition,
  batchesPerEpoch,
  shardIndices,
  type BatchPosition,
  type Shard,
} from './batches.ts';
import { imagesTensor, type ImageArray } from './image-array.ts';
import { moduleDevice } from '../nn/index.ts';

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

/** How long a rank waits for the other ranks' parts of a token cache (they encode at the same time). */
const PART_WAIT_MS = 30 * 60 * 1000;

/** The part files of a complete sharded cache (any number of parts), in order; null when none is complete. */
function completeParts(cacheDir: string, key: string): string[] | null {
  if (!existsSync(cacheDir)) return null;
  const re = new RegExp(`^tokens-${key}\\.part-(\\d+)-of-(\\d+)\\.safetensors$`);
  const byWorld = new Map<number, Set<number>>();
  for (const f of readdirSync(cacheDir)) {
    const m = re.exec(f);
    if (m) byWorld.set(Number(m[2]), (byWorld.get(Number(m[2])) ?? new Set()).add(Number(m[1])));
  }
  for (const [world, parts] of byWorld)
    if (parts.size === world) return Array.from({ length: world }, (_, r) => partFile(cacheDir, key, r, world));
  return null;
}
const partFile = (cacheDir: string, key: string, rank: number, world: number): string =>
  join(cacheDir, `tokens-${key}.part-${rank}-of-${world}.safetensors`);

/** Tokens (to − from, D) of images [from, to), encoded on the tokenizer's device and kept on the CPU (loader data). */
function encodeRange(tok: RepTokTokenizer, data: ImageArray, from: number, to: number): Tensor {
  const device = moduleDevice(tok);
  return noGrad(() =>
    tidy(() => {
      const parts: Tensor[] = [];
      for (let i = from; i < to; i += 256)
        parts.push(
          tidy(() =>
            tok
              .encode(
                imagesTensor(
                  data,
                  Int32Array.from({ length: Math.min(256, to - i) }, (_, k) => i + k),
                ).to(device),
              )
              .to('cpu'),
          ),
        );
      // a rank whose share is empty (more ranks than images) writes an empty part
      return parts.length ? cat(parts) : zeros([0, tok.tokenDim], { device: 'cpu' });
    }),
  );
}

/**
 * Tokens of every image of `data` under the tokenizer saved at `tokenizerPath`, from the cache when present. In
 * data-parallel training each rank encodes its `shard` of the images and writes it as one part of the cache; every
 * rank then reads the whole set (and so does any later run, with any number of processes).
 */
export function tokensFor(
  tok: RepTokTokenizer,
  tokenizerPath: string,
  data: ImageArray,
  cacheDir: string,
  log: (m: string) => void = () => {},
  shard: Shard = SINGLE,
): TokenSet {
  const key = sha(sha(readFileSync(tokenizerPath)), `${data.n}x${data.c}x${data.h}x${data.w}`, sha(data.pixels)).slice(
    0,
    20,
  );
  const file = join(cacheDir, `tokens-${key}.safetensors`);
  const load = (f: string): Tensor => loadSafetensors(f).tensors.get('tokens')!;
  let tokens: Tensor;
  let parts: string[] | null = null;
  if (existsSync(file)) {
    tokens = load(file);
    log(`tokens: ${file} (cached)`);
  } else if ((parts = completeParts(cacheDir, key))) {
    tokens = tidy(() => cat(parts!.map(load)));
    log(`tokens: ${parts.length} cached parts ${join(cacheDir, `tokens-${key}.part-*`)}`);
  } else {
    const t0 = performance.now();
    const [from, to] = [shard.rank, shard.rank + 1].map((r) => Math.floor((r * data.n) / shard.world)) as [
      number,
      number,
    ];
    const mine = encodeRange(tok, data, from, to);
    mkdirSync(cacheDir, { recursive: true });
    const meta = { tokenizerFile: tokenizerPath, images: String(data.n) };
    if (shard.world === 1) {
      saveSafetensors(file, { tokens: mine }, meta);
      tokens = mine;
    } else {
      saveSafetensors(partFile(cacheDir, key, shard.rank, shard.world), { tokens: mine }, meta);
      mine.dispose();
      const deadline = Date.now() + PART_WAIT_MS;
      while (!(parts = completeParts(cacheDir, key))) {
        if (Date.now() > deadline)
          throw new Error(
            `rank ${shard.rank} waited ${PART_WAIT_MS / 60000} min for the other ranks' parts of the token cache ` +
              `${join(cacheDir, `tokens-${key}.part-*`)}; is every worker running, on one file system (cacheDir)?`,
          );
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
      }
      tokens = tidy(() => cat(parts!.map(load)));
    }
    log(
      `tokens: encoded ${to - from} of ${data.n} images in ${((performance.now() - t0) / 1000).toFixed(1)} s ` +
        `-> ${shard.world > 1 ? `${join(cacheDir, `tokens-${key}.part-*`)}` : file}`,
    );
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
    private readonly shard: Shard = SINGLE,
  ) {
    localBatchSize(batchSize, shard);
    if (batchesPerEpoch(set.tokens.shape[0]!, batchSize) === 0)
      throw new Error(`${set.tokens.shape[0]} tokens are fewer than one batch of ${batchSize}`);
    checkPosition(position, set.tokens.shape[0]!, batchSize);
    this.#position = position;
  }
  get position(): BatchPosition {
    return { ...this.#position };
  }
  async next(): Promise<TokenBatch> {
    const p = this.#position;
    const n = this.set.tokens.shape[0]!;
    const idx = shardIndices(n, this.batchSize, this.seed, p, this.shard);
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
