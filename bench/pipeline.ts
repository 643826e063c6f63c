// npm run bench:pipeline — what the shipped models cost a user of the pipeline: class-conditional samples of the
// Fashion-MNIST set (8 classes × 2) and text-to-image samples of the emoji set (2 prompts × 2), `--steps` ODE steps
// each (token generator and decoder), in three configurations of `RepTok.load`:
//   fp32 on sgemm (packWeights: false) — the reference; fp32 on packed weights (the default); bf16 (precision 'bf16')
// Each configuration is paired with the reference in the same process, and the median of the per-pair ratios is
// reported, with the largest pixel difference from the reference's images (same seeds, [-1, 1] scale). No PyTorch
// peer: the pipeline has no PyTorch counterpart here (its models' peers are bench:tokenizer and bench:generator).
//   --pairs 5   --steps 20
import { RepTok, type PipelineOptions } from '../src/pipeline/index.ts';
import { shippedSources, type ShippedFamily } from '../src/pipeline/shipped.ts';
import { Tensor } from '../src/index.ts';
import { benchArgs, emit, emitKernels, median, paired, spread } from './peer.ts';

const args = benchArgs();
const pairs = Number(args.get('pairs', '5'));
const steps = Number(args.get('steps', '20'));

const configurations: Record<string, PipelineOptions> = {
  fp32_packed: { packWeights: true, precision: 'fp32' },
  bf16: { packWeights: true, precision: 'bf16' },
};
const reference: PipelineOptions = { packWeights: false, precision: 'fp32' };

/** One sampling call of the family's kind; returns its images (the caller disposes them). */
function sampler(family: ShippedFamily, rt: RepTok): () => Tensor {
  if (family === 'emoji') return () => rt.generate(['red heart', 'cat face'], { n: 2, steps, seed: 0 }).images;
  return () => rt.sample({ classes: [0, 1, 2, 3, 4, 5, 6, 7], n: 2, steps, seed: 0 }).images;
}

/** Seconds of one call, and its images. */
function timed(fn: () => Tensor): { s: number; images: Tensor } {
  const t0 = performance.now();
  const images = fn();
  return { s: (performance.now() - t0) / 1000, images };
}

emitKernels('pipeline');
for (const family of ['fashion-mnist', 'emoji'] as const) {
  const load = (o: PipelineOptions): RepTok => RepTok.load({ ...shippedSources(family), ...o });
  const base = load(reference);
  const run0 = sampler(family, base);
  const images0 = run0();
  run0().dispose(); // warm-up
  const line: Record<string, unknown> = { bench: 'pipeline', family, steps, pairs, reference: 'fp32 on sgemm' };
  for (const [name, o] of Object.entries(configurations)) {
    const rt = load(o);
    const run = sampler(family, rt);
    run().dispose(); // warm-up: packs the weights
    let diff = 0;
    const { ours, ratios } = await paired(
      pairs,
      () => {
        const { s, images } = timed(run);
        diff = Math.max(diff, images.sub(images0).abs().max().item() as number);
        images.dispose();
        return s;
      },
      async () => {
        const { s, images } = timed(run0);
        images.dispose();
        return s;
      },
    );
    line[`${name}_s`] = median(ours);
    line[`${name}_ratio`] = median(ratios);
    line[`${name}_ratio_range`] = spread(ratios);
    line[`${name}_max_pixel_diff`] = diff;
    rt.dispose();
  }
  emit(line);
  images0.dispose();
  base.dispose();
}
