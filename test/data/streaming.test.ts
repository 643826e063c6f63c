// Streaming data: WebDataset-style tar shards decoded in worker threads with a bounded prefetch queue. Every readable
// sample comes once per epoch, split disjointly across ranks and workers; corrupt samples are skipped and counted;
// a few thousand images stream with flat memory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';

import { writeTar } from '../../src/io/tar.ts';
import { StreamLoader, streamSource } from '../../src/data/streaming.ts';
import { resolveTrainConfig, train } from '../../src/train/presets.ts';
import { syntheticFolder, tinyConfigs } from '../train/fixtures.ts';

/** `shards` tar files holding `n` 24×24 gray PNGs in total (label = sample number) and `corrupt` broken ones. */
async function writeShards(n: number, shards: number, corrupt: number): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'reptok-shards-'));
  const px = Buffer.alloc(24 * 24);
  const entries: { name: string; data: Uint8Array }[][] = Array.from({ length: shards }, () => []);
  for (let i = 0; i < n + corrupt; i++) {
    px.fill(i % 251);
    const png = i < n ? await sharp(px, { raw: { width: 24, height: 24, channels: 1 } }).png().toBuffer() : px;
    const key = `sample${String(i).padStart(5, '0')}`;
    entries[i % shards]!.push({ name: `${key}.png`, data: png }, { name: `${key}.cls`, data: Buffer.from(String(i)) });
  }
  entries.forEach((e, s) => writeTar(join(dir, `shard-${s}.tar`), e));
  return dir;
}

const opts = { size: 16, channels: 1 as const, views: [{ size: 16, crop: 'resize' as const }], seed: 3 };

test('every readable sample once per epoch, disjoint across 2 ranks × 2 workers; corrupt ones counted', async () => {
  const dir = await writeShards(120, 3, 5);
  const seen: number[] = [];
  for (const rank of [0, 1]) {
    const shard = { rank, world: 2 };
    const loader = new StreamLoader(streamSource(dir), { ...opts, batchSize: 8, shard, workers: 2 });
    for (let i = 0; i < 30 && loader.position.epoch === 0; i++) {
      const b = await loader.next();
      if (b.epoch > 0) break;
      assert.deepEqual(b.views[0]!.shape, [4, 1, 16, 16]);
      seen.push(...(b.labels.toArray() as number[]));
    }
    assert.ok(loader.skipped > 0 && loader.skipped <= 5, `skipped ${loader.skipped}`);
    assert.match(loader.skippedExamples[0]!, /sample001(2[0-4])/);
    loader.close();
  }
  // 4 slots read disjoint shares; incomplete batches at the end of an epoch are dropped
  assert.equal(new Set(seen).size, seen.length, 'a sample came twice');
  assert.ok(seen.length >= 120 - 4 * 4 && seen.every((l) => l < 120), `${seen.length} samples`);
});

test('a few thousand images stream through with flat memory', async (t) => {
  const dir = await writeShards(3000, 4, 0);
  const loader = new StreamLoader(streamSource(dir), {
    ...opts,
    size: 64,
    channels: 3,
    views: [{ size: 64, crop: 'resize' }],
    batchSize: 32,
    workers: 2,
    prefetch: 8,
  });
  let rssAfterWarmup = 0;
  let images = 0;
  for (let i = 0; i < 90; i++) {
    const b = await loader.next();
    images += b.views[0]!.shape[0]!;
    b.views.forEach((v) => v.dispose());
    b.labels.dispose();
    if (i === 15) {
      global.gc?.();
      rssAfterWarmup = process.memoryUsage().rss;
    }
  }
  global.gc?.();
  const growth = (process.memoryUsage().rss - rssAfterWarmup) / 2 ** 20;
  loader.close();
  t.diagnostic(`RSS growth after warm-up: ${growth.toFixed(1)} MB over ${images} images`);
  assert.equal(images, 90 * 32);
  // holding the decoded images would take 3000 × 3·64·64 B = 37 MB (148 MB as floats): well above this bound
  assert.ok(growth < 24, `RSS grew by ${growth.toFixed(1)} MB while streaming ${images} images`);
});

test('the tokenizer stage trains from tar shards (data stream:<folder>), the last shard held out', async () => {
  const dir = await writeShards(60, 3, 2);
  const file = join(mkdtempSync(join(tmpdir(), 'reptok-cfg-')), 'tok.json');
  writeFileSync(file, JSON.stringify({ ...tinyConfigs(`stream:${dir}`).tokenizer, valEvery: 2 }));
  const config = resolveTrainConfig('tokenizer', 'fmnist-tokenizer', { file });
  const logs: string[] = [];
  const out = mkdtempSync(join(tmpdir(), 'reptok-stream-run-'));
  const r = await train('tokenizer', config, { out, steps: 2, log: (m) => logs.push(m) });
  assert.equal(r.step, 2);
  assert.ok(existsSync(join(out, 'tokenizer.safetensors')));
});

test('an image folder streams lazily: every image once per epoch, class = first sub-folder', async () => {
  const dir = await syntheticFolder(); // 24 'left' + 24 'right' images
  const source = streamSource(dir);
  assert.equal(source.kind, 'files');
  const loader = new StreamLoader(source, { ...opts, channels: 3, batchSize: 8, workers: 2 });
  const labels: number[] = [];
  for (let i = 0; i < 6; i++) labels.push(...((await loader.next()).labels.toArray() as number[]));
  const next = await loader.next(); // a stream learns that an epoch is over when it asks for more
  assert.deepEqual([next.epoch, next.index], [1, 0]);
  loader.close();
  assert.equal(labels.filter((l) => l === 0).length, 24);
  assert.equal(labels.filter((l) => l === 1).length, 24);
});

test('a stream resumed from a position continues with the same batches', async () => {
  const dir = await writeShards(64, 2, 0);
  const o = { ...opts, batchSize: 8, workers: 2 };
  const labels = async (l: StreamLoader, n: number) => {
    const out: number[][] = [];
    for (let i = 0; i < n; i++) out.push((await l.next()).labels.toArray() as number[]);
    return out;
  };
  const whole = new StreamLoader(streamSource(dir), o);
  const all = await labels(whole, 5);
  whole.close();
  const first = new StreamLoader(streamSource(dir), o);
  await labels(first, 2);
  const position = first.position;
  first.close();
  const resumed = new StreamLoader(streamSource(dir), { ...o, position });
  assert.deepEqual(await labels(resumed, 3), all.slice(2));
  resumed.close();
});
