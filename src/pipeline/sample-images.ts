// The images that come with a model: what the demo page reconstructs and the web demo searches for a token's
// nearest neighbours. A model folder may hold its own in `samples/` (any images; sub-folders name classes);
// otherwise they are the first test images of the data set the tokenizer was trained on, when that data set is on
// this machine (Fashion-MNIST from Debian's dataset-fashion-mnist, the emoji from Twemoji). Neither is required:
// the result says why there are none.
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { subset, type ImageArray } from '../data/image-array.ts';
import { loadImageFolder } from '../data/image-folder.ts';
import { loadSplits } from '../train/datasets.ts';
import type { RepTok } from './reptok.ts';

export type SampleImages = { images: ImageArray; from: string } | { images: null; why: string };

/** Up to `n` sample images at the tokenizer's size and channels, from `<dir>/samples/` or the tokenizer's data set. */
export async function loadSampleImages(rt: RepTok, o: { dir?: string; n: number }): Promise<SampleImages> {
  const [H, W] = rt.imageSize;
  const channels = rt.channels as 1 | 3;
  // a spread over the classes: the first image of each class, then the second of each, ... (a folder of class
  // sub-folders lists each class's images together, so its first n would all be of one class)
  const first = (d: ImageArray) => {
    const byClass = new Map<number, number[]>();
    for (let i = 0; i < d.n; i++) {
      const list = byClass.get(d.labels[i]!) ?? [];
      if (list.push(i) === 1) byClass.set(d.labels[i]!, list);
    }
    const order: number[] = [];
    for (let k = 0; order.length < Math.min(o.n, d.n); k++)
      for (const list of byClass.values()) if (k < list.length && order.length < o.n) order.push(list[k]!);
    return subset(d, Int32Array.from(order));
  };
  const folder = o.dir && join(o.dir, 'samples');
  if (folder && existsSync(folder)) {
    const { data } = await loadImageFolder(folder, { size: H, channels });
    return { images: first(data), from: 'samples/ in the model folder' };
  }
  const name = rt.models.tokenizer.data.name;
  if (!name) return { images: null, why: 'the tokenizer file names no data set, and the model folder has no samples/' };
  try {
    const { test } = await loadSplits(name, { size: H });
    if (test.h !== H || test.w !== W || test.c !== channels)
      return { images: null, why: `the ${name} images here are not ${H}×${W}×${channels} like the tokenizer's` };
    return { images: first(test), from: `the ${name} test split` };
  } catch (e) {
    return { images: null, why: `the tokenizer's data set is not available here (${(e as Error).message})` };
  }
}
