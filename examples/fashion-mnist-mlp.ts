// A complete reptok engine example: train a small MLP classifier on Fashion-MNIST and report test accuracy.
//   npx tsx examples/fashion-mnist-mlp.ts [epochs]
import { F, Generator, manualSeed, noGrad, randperm, tensor, tidy } from '../src/index.ts';
import { GELU, Linear, Sequential } from '../src/nn/index.ts';
import { AdamW } from '../src/optim/index.ts';
import { loadFashionMnist } from '../src/data/fashion-mnist.ts';
import { imagesTensor } from '../src/data/image-array.ts';

const epochs = Number(process.argv[2] ?? 2);
manualSeed(0);
const train = loadFashionMnist('train');
const test = loadFashionMnist('test');
// uint8 (N, 1, 28, 28) -> float (N, 784) in [-1, 1]
const all = (n: number) => Int32Array.from({ length: n }, (_, i) => i);
const xTrain = imagesTensor(train, all(train.n)).flatten(1);
const xTest = imagesTensor(test, all(test.n)).flatten(1);
const yTrain = tensor(train.labels, { dtype: 'int64' });
const yTest = tensor(test.labels, { dtype: 'int64' });

const model = new Sequential(new Linear(784, 256), new GELU(), new Linear(256, 10));
const opt = new AdamW(model.parameters(), { lr: 1e-3, weightDecay: 1e-4 });
const order = new Generator({ seed: 1 });
const batch = 128;

const t0 = performance.now();
for (let epoch = 0; epoch < epochs; epoch++) {
  const perm = randperm(xTrain.shape[0]!, { generator: order });
  let total = 0;
  for (let i = 0; i + batch <= perm.shape[0]!; i += batch) {
    total += tidy(() => {
      const idx = perm.slice(0, i, i + batch);
      const loss = F.crossEntropy(model.forward(xTrain.indexSelect(0, idx)), yTrain.indexSelect(0, idx));
      opt.zeroGrad();
      loss.backward();
      opt.step();
      return loss.item();
    });
  }
  perm.dispose();
  const accuracy = noGrad(() => tidy(() => model.forward(xTest).argmax(1).eq(yTest).float().mean().item()));
  console.log(
    `epoch ${epoch + 1}/${epochs}: mean training loss ${(total / Math.floor(xTrain.shape[0]! / batch)).toFixed(4)}, ` +
      `test accuracy ${(100 * accuracy).toFixed(2)}% (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
  );
}
