// Data sets by name for the training stages: 'fashion-mnist', 'emoji' (or 'emoji-64'), 'folder:<path>' (in
// memory), 'stream:<path>' (tar shards or an image folder read from disk while training).
import { readFileSync } from 'node:fs';
import { loadFashionMnist } from '../data/fashion-mnist.ts';
import { loadEmoji } from '../data/emoji.ts';
import { loadImageFolder } from '../data/image-folder.ts';
import { imageArray, subset, type ImageArray } from '../data/image-array.ts';
import { streamSource, type StreamSource } from '../data/streaming.ts';
import { readTar } from '../io/tar.ts';
import { readImageBytes } from '../io/image-decode.ts';

export interface Splits {
  train: ImageArray;
  test: ImageArray;
}

/** Training and held-out images. Data sets without a test split hold out every 20th image. */
export async function loadSplits(
  name: string,
  o: { dataDir?: string; size?: number; log?: (m: string) => void } = {},
): Promise<Splits> {
  const holdOut = (d: ImageArray): Splits => {
    const test = Int32Array.from({ length: Math.floor(d.n / 20) }, (_, i) => i * 20);
    const keep = new Set(test);
    return {
      train: subset(
        d,
        Int32Array.from({ length: d.n }, (_, i) => i).filter((i) => !keep.has(i)),
      ),
      test: subset(d, test),
    };
  };
  if (name === 'fashion-mnist')
    return {
      train: loadFashionMnist('train', o.dataDir || undefined),
      test: loadFashionMnist('test', o.dataDir || undefined),
    };
  if (name === 'emoji' || name === 'emoji-64') return holdOut(await loadEmoji({ size: name === 'emoji' ? 32 : 64 }));
  if (name.startsWith('folder:')) {
    const root = name.slice('folder:'.length);
    const { data, skipped } = await loadImageFolder(root, { size: o.size ?? 64 });
    if (skipped.length)
      o.log?.(
        `skipped ${skipped.length} unreadable file(s):\n${skipped.map((s) => `  ${s.path}: ${s.reason}`).join('\n')}`,
      );
    return holdOut(data);
  }
  throw new Error(`unknown data set '${name}': use fashion-mnist, emoji, emoji-64 or folder:<path>`);
}

/**
 * 'stream:<path>' (a .tar shard, a folder of shards, or an image folder, read from disk while training): the training
 * source and up to `testImages` held-out images in memory. Held out: the last shard when there are several, every
 * 20th file of a folder; a single shard has no held-out part (its first images are shown instead).
 */
export async function streamSplits(
  name: string,
  o: { size: number; channels: 1 | 3; testImages?: number; log?: (m: string) => void },
): Promise<{ source: StreamSource; test: ImageArray }> {
  const all = streamSource(name.slice('stream:'.length));
  const max = o.testImages ?? 256;
  let source: StreamSource;
  const encoded: { bytes: Buffer; label: number }[] = [];
  if (all.kind === 'files') {
    const keep = (i: number) => i % 20 !== 0;
    source = {
      kind: 'files',
      items: all.items.filter((_, i) => keep(i)),
      labels: all.labels.filter((_, i) => keep(i)),
    };
    for (let i = 0; i < all.items.length && encoded.length < max; i += 20)
      encoded.push({ bytes: readFileSync(all.items[i]!), label: all.labels[i]! });
  } else {
    source = all.items.length > 1 ? { kind: 'tar', items: all.items.slice(0, -1) } : all;
    if (all.items.length === 1) o.log?.(`${name}: one shard, nothing held out: validation shows its first images`);
    let label = 0;
    for (const e of readTar(all.items.at(-1)!)) {
      if (e.name.endsWith('.cls')) label = Number.parseInt(e.data.toString('utf8'), 10) || 0;
      else if (/\.(png|jpe?g|webp)$/i.test(e.name)) encoded.push({ bytes: e.data, label });
      if (encoded.length >= max) break;
    }
  }
  const images = [];
  for (const e of encoded) {
    try {
      images.push({ ...(await readImageBytes(e.bytes, { size: o.size, channels: o.channels })), label: e.label });
    } catch {
      // corrupt held-out images are left out, as in training
    }
  }
  if (!images.length) throw new Error(`${name}: no readable held-out images`);
  const px = new Uint8Array(images.length * images[0]!.data.length);
  images.forEach((im, i) => px.set(im.data, i * im.data.length));
  return {
    source,
    test: imageArray(
      px,
      [images.length, o.channels, o.size, o.size],
      images.map((im) => im.label),
      Array.from({ length: Math.max(...images.map((im) => im.label)) + 1 }, (_, k) => String(k)),
    ),
  };
}
