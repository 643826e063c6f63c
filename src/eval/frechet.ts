// Fréchet distance between two feature sets, each summarised as a Gaussian (Heusel et al. 2017 with Inception
// features: FID; Stein et al. 2023 with DINOv2 features: FD-DINOv2):
//
//   FD = |μ₁ − μ₂|² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^½ Σ₂ Σ₁^½)^½
//
// tr (Σ₁Σ₂)^½ is usually computed with scipy's general matrix square root of the non-symmetric Σ₁Σ₂, which returns
// complex parts and NaNs on near-singular covariances (every feature set with fewer samples than dimensions).
// Σ₁^½ Σ₂ Σ₁^½ has the same eigenvalues as Σ₁Σ₂ but is symmetric positive semi-definite, so two symmetric
// eigendecompositions give the trace exactly, with round-off negatives clamped to zero. Everything runs in float64:
// the statistics on the features' device (the N·D² products), the eigendecompositions of the (D, D) matrices on the
// CPU (LAPACK on every build, and the same result whichever device made the features).
import { Tensor, aten, noGrad, tidy, keep, zeros } from '../engine/index.ts';

/** Mean (D) and covariance (D, D) of a feature set (N, D), in float64; the covariance divides by N − 1. */
export interface GaussianStats {
  mean: Tensor;
  cov: Tensor;
  count: number;
}

/** Gaussian statistics of features (N, D); N ≥ 2. Streams over rows in chunks so huge sets need no float64 copy. */
export function gaussianStats(features: Tensor, o: { chunk?: number } = {}): GaussianStats {
  if (features.dim() !== 2) throw new Error(`gaussianStats: features must be (N, D), got [${features.shape}]`);
  const [n, d] = features.shape as [number, number];
  if (n < 2) throw new Error(`gaussianStats: need at least 2 samples to estimate a covariance, got ${n}`);
  const chunk = o.chunk ?? 4096;
  return noGrad(() =>
    tidy(() => {
      // Two passes (mean, then centred products): one-pass sums of x·xᵀ lose digits when |μ| ≫ σ.
      let sum = zeros([d], { dtype: 'float64', device: features.device });
      for (let i = 0; i < n; i += chunk)
        sum = sum.add(
          features
            .slice(0, i, i + chunk)
            .double()
            .sum(0),
        );
      const mean = sum.div(n);
      let scatter = zeros([d, d], { dtype: 'float64', device: features.device });
      for (let i = 0; i < n; i += chunk) {
        const x = features
          .slice(0, i, i + chunk)
          .double()
          .sub(mean); // (b, D)
        scatter = scatter.add(x.transpose(0, 1).mm(x));
      }
      return { mean: keep(mean), cov: keep(scatter.div(n - 1)), count: n };
    }),
  );
}

/** Fréchet distance between two Gaussians given by their statistics. */
export function frechetFromStats(
  a: Pick<GaussianStats, 'mean' | 'cov'>,
  b: Pick<GaussianStats, 'mean' | 'cov'>,
): number {
  if (a.mean.shape[0] !== b.mean.shape[0])
    throw new Error(`frechetDistance: feature widths differ (${a.mean.shape[0]} vs ${b.mean.shape[0]})`);
  return noGrad(() =>
    tidy(() => {
      const host = (t: Tensor) => t.to({ dtype: 'float64', device: 'cpu' });
      const s1 = host(a.cov);
      const s2 = host(b.cov);
      const sqrt1 = psdSqrt(s1); // Σ₁^½
      const m = sqrt1.mm(s2).mm(sqrt1);
      const traceSqrt = symmetricEigenvalues(m.add(m.transpose(0, 1)).div(2))
        .clampMin(0)
        .sqrt()
        .sum()
        .item() as number;
      const meanTerm = host(a.mean).sub(host(b.mean)).square().sum().item() as number;
      const traces = (aten('aten::trace', s1).item() as number) + (aten('aten::trace', s2).item() as number);
      return Math.max(0, meanTerm + traces - 2 * traceSqrt);
    }),
  );
}

/** Fréchet distance between two feature sets (N₁, D) and (N₂, D). */
export function frechetDistance(a: Tensor, b: Tensor, o: { chunk?: number } = {}): number {
  const sa = gaussianStats(a, o);
  const sb = gaussianStats(b, o);
  try {
    return frechetFromStats(sa, sb);
  } finally {
    for (const t of [sa.mean, sa.cov, sb.mean, sb.cov]) t.dispose();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Symmetric eigendecomposition helpers
// ---------------------------------------------------------------------------------------------------------------

function symmetricEigenvalues(s: Tensor): Tensor {
  return aten('aten::linalg_eigvalsh', s, 'L');
}

/** Square root of a symmetric positive semi-definite matrix: V diag(√max(λ, 0)) Vᵀ. */
function psdSqrt(s: Tensor): Tensor {
  const [values, vectors] = aten('aten::linalg_eigh', s.add(s.transpose(0, 1)).div(2), 'L') as [Tensor, Tensor];
  return vectors.mul(values.clampMin(0).sqrt()).mm(vectors.transpose(0, 1));
}
