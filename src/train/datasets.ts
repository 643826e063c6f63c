// Data sets by name for the training stages: 'fashion-mnist', 'emoji' (or 'emoji-64'), 'folder:<path>'.
import { loadFashionMnist } from '../data/fashion-mnist.ts';
import { loadEmoji } from '../data/emoji.ts';
import { loadImageFolder } from '../data/image-folder.ts';
import { subset, type ImageArray } from '../data/image-array.ts';

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
