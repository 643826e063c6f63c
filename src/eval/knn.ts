// k-nearest-neighbour classification on frozen features, as DINO evaluates its representations: cosine
// similarity, the k most similar training samples vote with weights exp(similarity / T).
import { Tensor, F, noGrad, tidy, zeros } from '../engine/index.ts';

export function knnAccuracy(
  train: Tensor,
  trainLabels: Tensor,
  test: Tensor,
  testLabels: Tensor,
  o: { k?: number; temperature?: number; classes: number; chunk?: number },
): number {
  const k = o.k ?? 20;
  const T = o.temperature ?? 0.07;
  const chunk = o.chunk ?? 256;
  return noGrad(() =>
    tidy(() => {
      const tr = F.normalize(train.float(), 2, 1);
      let correct = 0;
      for (let i = 0; i < test.shape[0]!; i += chunk) {
        correct += tidy(() => {
          const q = F.normalize(test.slice(0, i, i + chunk).float(), 2, 1);
          const { values, indices } = q.mm(tr.transpose(0, 1)).topk(k, 1); // (b, k)
          const votes = zeros([q.shape[0]!, o.classes], { device: q.device }).scatterAdd(
            1,
            trainLabels.index([indices]),
            values.div(T).exp(),
          );
          return votes
            .argmax(1)
            .eq(testLabels.slice(0, i, i + chunk))
            .sum()
            .item();
        });
      }
      return correct / test.shape[0]!;
    }),
  );
}
