// The recipes of the models that ship in weights/ (scripts/train-weights.mjs runs them): one entry per model, in
// dependency order. `sets` are `reptok train --set` overrides and may name an earlier model's file as {file:<model>}.
// test/train/weights-recipes.test.ts checks that every recipe resolves to a valid training config.

// Precisions as the shipped models were trained: training's default is 'auto' (bf16 on CPUs with native bf16
// products), so the recipes name theirs and a re-run trains the same on any machine.
const BF16 = ['precision=bf16'];
const FP32 = ['precision=fp32'];
export const FAMILIES = {
  'fashion-mnist': [
    { model: 'encoder', stage: 'ssl', preset: 'fmnist-ssl', steps: 4000, sets: [...BF16, 'warmupSteps=300'] },
    { model: 'classifier', stage: 'classifier', preset: 'fmnist-classifier', steps: 2500, sets: FP32 },
    {
      model: 'tokenizer',
      stage: 'tokenizer',
      preset: 'fmnist-tokenizer',
      steps: 4000,
      sets: [...BF16, 'warmupSteps=300', 'encoderWeights={file:encoder}'],
    },
    {
      model: 'generator',
      stage: 'generator',
      preset: 'fmnist-generator',
      steps: 3000,
      sets: [...FP32, 'tokenizerFile={file:tokenizer}'],
    },
  ],
  emoji: [
    { model: 'encoder', stage: 'ssl', preset: 'emoji-ssl', steps: 4000, sets: [...BF16, 'warmupSteps=300'] },
    // emoji classes are Unicode's groups; a flip keeps an emoji's group
    { model: 'classifier', stage: 'classifier', preset: 'emoji-classifier', steps: 1000, sets: FP32 },
    {
      model: 'tokenizer',
      stage: 'tokenizer',
      preset: 'emoji-tokenizer',
      steps: 3000,
      sets: [...BF16, 'warmupSteps=300', 'encoderWeights={file:encoder}'],
    },
    { model: 't2i', stage: 't2i', preset: 'emoji-t2i', steps: 4000, sets: [...FP32, 'tokenizerFile={file:tokenizer}'] },
  ],
};
