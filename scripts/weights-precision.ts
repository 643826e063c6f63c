// Copies a model folder with every floating-point weight stored in another dtype (float16 or bfloat16), metadata
// unchanged: models load either way (weights are converted to the model's float32 on load). Used to measure what
// half-size storage costs before shipping it: `reptok eval` the copy beside the original.
//
//   npx tsx scripts/weights-precision.ts weights/fashion-mnist /tmp/fm-bf16 bfloat16
import { copyFileSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { loadSafetensors, saveSafetensors } from '../src/io/safetensors.ts';

const [from, to, dtype] = process.argv.slice(2);
if (!from || !to || (dtype !== 'float16' && dtype !== 'bfloat16' && dtype !== 'float32'))
  throw new Error('usage: weights-precision.ts FROM_DIR TO_DIR float16|bfloat16|float32');
mkdirSync(to, { recursive: true });
for (const name of readdirSync(from)) {
  const file = join(from, name);
  if (!statSync(file).isFile()) continue;
  if (!name.endsWith('.safetensors')) {
    copyFileSync(file, join(to, name));
    continue;
  }
  const { tensors, metadata } = loadSafetensors(file, { dtype });
  try {
    saveSafetensors(join(to, name), tensors, metadata);
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  const [a, b] = [statSync(file).size, statSync(join(to, name)).size];
  console.log(`${name}: ${(a / 1e6).toFixed(2)} MB -> ${(b / 1e6).toFixed(2)} MB (${dtype})`);
}
