// Improved precision and recall of a generated set against a real one (Kynkäänniemi et al. 2019): each set's
// manifold is the union of balls around its samples, each ball reaching the sample's k-th nearest neighbour within
// its own set. Precision: the share of generated samples inside the real manifold (are samples realistic?).
// Recall: the share of real samples inside the generated manifold (is the data's variety covered?).
import { Tensor, aten, noGrad, tidy, cat } from '../engine/index.ts';

export interface PrecisionRecall {
  precision: number;
  recall: number;
  k: number;
}

export function precisionRecall(
  real: Tensor,
  generated: Tensor,
  o: { k?: number; chunk?: number } = {},
): PrecisionRecall {
  const k = o.k ?? 3;
  for (const [name, x] of [
    ['real', real],
    ['generated', generated],
  ] as const) {
    if (x.dim() !== 2) throw new Error(`precisionRecall: ${name} features must be (N, D), got [${x.shape}]`);
    if (x.shape[0]! <= k) throw new Error(`precisionRecall: ${name} set needs more than k = ${k} samples`);
  }
  if (real.shape[1] !== generated.shape[1])
    throw new Error(`precisionRecall: feature widths differ (${real.shape[1]} vs ${generated.shape[1]})`);
  return noGrad(() =>
    tidy(() => {
      const r = real.double();
      const g = generated.double();
      const chunk = o.chunk ?? 1024;
      return {
        precision: coverage(r, kthNeighbourRadii(r, k, chunk), g, chunk),
        recall: coverage(g, kthNeighbourRadii(g, k, chunk), r, chunk),
        k,
      };
    }),
  );
}

/** Pairwise Euclidean distances (a, b) of two row sets, exact for equal rows (no |x|² − 2x·y + |y|² shortcut). */
const distances = (a: Tensor, b: Tensor): Tensor => aten('aten::cdist', a, b, 2.0, 2); // mode 2: never use mm

/** Distance of every row of x to its k-th nearest other row of x (N). */
function kthNeighbourRadii(x: Tensor, k: number, chunk: number): Tensor {
  const parts: Tensor[] = [];
  for (let i = 0; i < x.shape[0]!; i += chunk) {
    // k + 1 smallest: the row itself is at distance 0 and comes first (ties with duplicates count as neighbours).
    const { values } = distances(x.slice(0, i, i + chunk), x).topk(k + 1, 1, false);
    parts.push(values.select(1, k));
  }
  return cat(parts);
}

/** Share of the query rows that lie in at least one ball (centre: a row of `centres`, radius from `radii`). */
function coverage(centres: Tensor, radii: Tensor, queries: Tensor, chunk: number): number {
  let inside = 0;
  for (let i = 0; i < queries.shape[0]!; i += chunk) {
    inside += tidy(
      () =>
        distances(queries.slice(0, i, i + chunk), centres)
          .le(radii.unsqueeze(0))
          .any(1)
          .sum()
          .item() as number,
    );
  }
  return inside / queries.shape[0]!;
}
