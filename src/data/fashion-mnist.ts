// Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017) from its IDX files: 60,000 training and 10,000 test images, gray
// 28×28, 10 classes. Debian's `dataset-fashion-mnist` installs the files in /usr/share/datasets/fashion-mnist.
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';

import { imageArray, type ImageArray } from './image-array.ts';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

function readIdx(path: string, magic: number): { dims: number[]; data: Uint8Array } {
  const file = [path, `${path}.gz`].find(existsSync);
  if (!file)
    throw new Error(
      `Fashion-MNIST file ${path}(.gz) not found. Install Debian's dataset-fashion-mnist (apt-get install ` +
        `dataset-fashion-mnist) or pass the folder holding the IDX files.`,
    );
  const raw = readFileSync(file);
  const buf = file.endsWith('.gz') ? gunzipSync(raw) : raw;
  if (buf.length < 8 || buf.readUInt32BE(0) !== magic)
    throw new Error(
      `${file}: not an IDX file of the expected kind ` +
        `(magic ${buf.length >= 4 ? buf.readUInt32BE(0) : '?'}, expected ${magic})`,
    );
  const ndim = magic & 0xff;
  const dims = Array.from({ length: ndim }, (_, i) => buf.readUInt32BE(4 + 4 * i));
  const offset = 4 + 4 * ndim;
  const count = dims.reduce((a, b) => a * b, 1);
  if (buf.length - offset !== count)
    throw new Error(
      `${file}: expected ${count} bytes of data for shape [${dims.join(', ')}], ` +
        `found ${buf.length - offset} (truncated?)`,
    );
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + offset, count) };
}

/** Loads one split from `dir` (default: the Debian package's folder): gray images (N, 1, 28, 28), 0 = black. */
export function loadFashionMnist(split: 'train' | 'test', dir = FASHION_MNIST_DIR): ImageArray {
  const prefix = split === 'train' ? 'train' : 't10k';
  const img = readIdx(join(dir, `${prefix}-images-idx3-ubyte`), 0x00000803);
  const lab = readIdx(join(dir, `${prefix}-labels-idx1-ubyte`), 0x00000801);
  if (img.dims[0] !== lab.dims[0])
    throw new Error(`Fashion-MNIST ${split}: ${img.dims[0]} images but ${lab.dims[0]} labels`);
  return imageArray(img.data, [img.dims[0]!, 1, img.dims[1]!, img.dims[2]!], lab.data, FASHION_MNIST_CLASSES);
}
