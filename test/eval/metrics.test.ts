// Evaluation metrics against known answers: PSNR/SSIM and a Fréchet distance computed by scikit-image and SciPy
// for committed inputs (test/data/metric-cases.safetensors, written by tools/reference/make_metric_cases.py),
// closed forms for Gaussians, and precision/recall on point clouds whose overlap is known by construction.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { Tensor, Generator, aten, cat, randn, tensor, setNumThreads, getNumThreads } from '../../src/engine/index.ts';
import { loadSafetensors } from '../../src/io/safetensors.ts';
import { psnrPerImage, ssimPerImage } from '../../src/eval/image-quality.ts';
import { frechetDistance, frechetFromStats, gaussianStats } from '../../src/eval/frechet.ts';
import { precisionRecall } from '../../src/eval/precision-recall.ts';
import { DATA } from '../helpers.ts';

const cases = loadSafetensors(join(DATA, 'metric-cases.safetensors')).tensors;
const get = (k: string): Tensor => {
  const t = cases.get(k);
  if (!t) throw new Error(`metric-cases.safetensors lacks ${k}`);
  return t;
};
const near = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

for (const name of ['gray', 'rgb']) {
  test(`PSNR and SSIM per image equal scikit-image's (${name})`, () => {
    const pred = get(`${name}.pred`);
    const target = get(`${name}.target`);
    const psnr = psnrPerImage(pred, target).toArray() as number[];
    const ssim = ssimPerImage(pred, target).toArray() as number[];
    const psnrRef = get(`${name}.psnr`).toArray() as number[];
    const ssimRef = get(`${name}.ssim`).toArray() as number[];
    psnr.forEach((v, i) => near(v, psnrRef[i]!, 1e-9, `psnr[${i}]`));
    ssim.forEach((v, i) => near(v, ssimRef[i]!, 1e-9, `ssim[${i}]`));
    // float32 inputs (what models produce) stay within float32 round-off.
    const ssim32 = ssimPerImage(pred.float(), target.float()).toArray() as number[];
    ssim32.forEach((v, i) => near(v, ssimRef[i]!, 1e-5, `float32 ssim[${i}]`));
  });
}

test('SSIM of an image with itself is 1; bad shapes are refused with their shapes', () => {
  const x = get('gray.target');
  for (const v of ssimPerImage(x, x).toArray() as number[]) near(v, 1, 1e-12, 'ssim(x, x)');
  assert.throws(() => ssimPerImage(x, x.slice(0, 0, 2)), /one shape.*\[6,1,28,28\].*\[2,1,28,28\]/);
  assert.throws(() => ssimPerImage(x.slice(2, 0, 8), x.slice(2, 0, 8)), /at least 11×11/);
});

test('Fréchet distance from statistics equals SciPy sqrtm on non-commuting covariances', () => {
  const fd = frechetFromStats(
    { mean: get('fd.mu1'), cov: get('fd.sigma1') },
    { mean: get('fd.mu2'), cov: get('fd.sigma2') },
  );
  near(fd, get('fd.value').item() as number, 1e-9, 'FD');
});

test('Fréchet distance of diagonal Gaussians has the closed form |Δμ|² + Σ(√a − √b)²', () => {
  const a = [1, 4, 9, 0.25];
  const b = [4, 1, 1, 0.25];
  const diag = (v: number[]): Tensor => aten('aten::diag_embed', tensor(v, { dtype: 'float64' }));
  const fd = frechetFromStats(
    { mean: tensor([0, 0, 1, 2], { dtype: 'float64' }), cov: diag(a) },
    { mean: tensor([1, 0, 1, 0], { dtype: 'float64' }), cov: diag(b) },
  );
  const expected = 1 + 4 + a.reduce((s, ai, i) => s + (Math.sqrt(ai) - Math.sqrt(b[i]!)) ** 2, 0);
  near(fd, expected, 1e-12, 'closed form');
});

test('FD(x, x) = 0, FD ignores sample order, and singular covariances give no NaN', () => {
  const g = new Generator({ seed: 7 });
  const x = randn([50, 80], { generator: g }); // fewer samples than dimensions: rank-deficient covariance
  const y = randn([60, 80], { generator: g }).mul(1.5).add(0.3);
  near(frechetDistance(x, x), 0, 1e-9, 'FD(x, x)');
  const fd = frechetDistance(x, y);
  assert.ok(Number.isFinite(fd) && fd > 0, `FD is ${fd}`);
  const shuffled = y.indexSelect(0, tensor([...Array(60).keys()].reverse(), { dtype: 'int64' }));
  // Rank-deficient covariances: √λ of round-off-sized eigenvalues (≈1e-14) moves the trace by ≈1e-7.
  near(frechetDistance(x, shuffled), fd, 1e-8, 'FD after reordering');
});

test('Gaussian statistics and FD do not depend on the chunk size or the thread count', () => {
  const g = new Generator({ seed: 11 });
  const x = randn([300, 16], { generator: g }).add(100); // large mean: the two-pass covariance keeps its digits
  const y = randn([200, 16], { generator: g }).add(100.5);
  const ref = frechetDistance(x, y, { chunk: 4096 });
  const threads = getNumThreads();
  try {
    for (const [chunk, n] of [
      [7, 1],
      [64, 2],
      [300, 1],
    ] as const) {
      setNumThreads(n);
      near(frechetDistance(x, y, { chunk }), ref, 1e-9, `chunk ${chunk}, ${n} thread(s)`);
    }
  } finally {
    setNumThreads(threads);
  }
  const s = gaussianStats(x, { chunk: 13 });
  near(s.mean.mean().item() as number, x.double().mean().item() as number, 1e-12, 'mean');
  assert.throws(() => gaussianStats(x.slice(0, 0, 1)), /at least 2 samples/);
});

test('precision and recall on grids with known overlap (k = 3)', () => {
  // Real: a 10×10 integer grid. Generated: its lower 5 rows, plus 50 points far away.
  const grid = (rows: number, dy = 0, dx = 0) =>
    tensor(
      Array.from({ length: rows * 10 }, (_, i) => [(i % 10) + dx, Math.floor(i / 10) + dy]),
      { dtype: 'float64' },
    );
  const real = grid(10);
  const generated = cat([grid(5), grid(5, 1000, 1000)]);
  const pr = precisionRecall(real, generated, { k: 3, chunk: 17 });
  // Precision: exactly the 50 generated points that coincide with real ones. Recall: every generated ball on the
  // grid has radius 1 or √2, so real rows 0–4 and row 5 (one step from row 4) are covered: 60 of 100.
  assert.equal(pr.precision, 0.5);
  assert.equal(pr.recall, 0.6);
  assert.deepEqual(precisionRecall(real, real), { precision: 1, recall: 1, k: 3 });
  assert.throws(() => precisionRecall(real.slice(0, 0, 3), real), /more than k = 3/);
});
