// Using trained models from code: reconstruct images, interpolate between them, sample classes.
//   npx tsx examples/use-models.ts <model folder> [out folder] [image...]
// The model folder holds tokenizer.safetensors and generator.safetensors (e.g. the files of `reptok demo`:
// out/demo/tokenizer and out/demo/generator merged into one folder, or any folder `reptok train` wrote into).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { RepTok, cat, imageGrid, writeAnimation, writeImage } from '../src/index.ts';

const [modelDir, out = 'out/use-models', ...inputs] = process.argv.slice(2);
if (!modelDir) throw new Error('usage: npx tsx examples/use-models.ts <model folder> [out folder] [image...]');
mkdirSync(out, { recursive: true });

const rt = RepTok.load({
  tokenizer: join(modelDir, 'tokenizer.safetensors'),
  generator: join(modelDir, 'generator.safetensors'),
});
console.log(`tokenizer: ${rt.imageSize.join('×')} images, tokens of width ${rt.tokenDim}; classes: ${rt.classes}`);

// 1. samples: two of each of the first three classes (guided, as RepTok samples)
const { images: samples } = rt.sample({ classes: rt.classes.slice(0, 3), n: 2, guidance: 1.5, steps: 25, seed: 0 });
await writeImage(join(out, 'samples.png'), imageGrid(samples, { nrow: 2 }));

// 2. reconstructions of the given images (else of the first two samples): originals on top
const originals = inputs.length ? await rt.readImages(inputs) : samples.slice(0, 0, 2);
const recon = rt.reconstruct(originals, { steps: 25, seed: 0 });
await writeImage(join(out, 'reconstructions.png'), imageGrid(cat([originals, recon]), { nrow: originals.shape[0]! }));

// 3. an interpolation between the first two images: a norm-aware slerp, one decoder noise for every frame
const { images: frames, tokens } = rt.interpolate(originals.select(0, 0), originals.select(0, 1), {
  frames: 8,
  steps: 25,
});
await writeAnimation(join(out, 'interpolation.gif'), frames, { delayMs: 150 });
const norms = (tokens.norm(2, 1).toArray() as number[]).map((n) => n.toFixed(2));
console.log(`interpolation token norms: ${norms.join(' ')}`);
console.log(`wrote ${out}/samples.png, ${out}/reconstructions.png and ${out}/interpolation.gif`);
rt.dispose();
