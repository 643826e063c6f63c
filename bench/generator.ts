// npm run bench:generator — the paper-scale MLP-Mixer generator (token 768, dim 1152, depth 28, expansions 3/4,
// 1000 classes): a training step (forward + backward + AdamW) and one guided sampling step (conditional and
// unconditional in one batched call), batch 64, each paired with the same in PyTorch (bench/peer/generator.py).
// JSON lines with impl, precision, batch, train_step_s, sample_step_s; `--impl reptok` skips the peer; `--bf16`
// and `--busy` as in bench/tokenizer.ts. The model is marked for inference on packed weights, as RepTok pipelines
// mark theirs (Module.packForInference): the training step is unaffected (its products have a backward pass to come),
// the float32 sampling step runs on packed copies; `--no-pack` samples on sgemm instead. Targets (issue #17): float32
// training step ≤ 1.0× and sampling step ≤ 0.9× the peer; bf16 both ≤ 0.5× our float32.
import { full, manualSeed, noGrad, randint, randn, tidy } from '../src/index.ts';
import { AdamW } from '../src/optim/index.ts';
import { classField, generatorModel } from '../src/models/generator.ts';
import { flowLoss } from '../src/flow/token-flow.ts';
import { guidedVelocity } from '../src/flow/guidance.ts';
import { withAutocast, type Precision } from '../src/train/autocast.ts';
import { benchArgs, comparePhases, emit } from './peer.ts';

const args = benchArgs();
const batch = Number(args.get('batch', '64'));

manualSeed(0);
const model = noGrad(() => generatorModel('mixer-xl'));
const opt = new AdamW(model.parameters(), { lr: 1e-4 });
const packed = !process.argv.includes('--no-pack') && model.packForInference() > 0;
const x1 = randn([batch, 1, 768]);
const y = randint(0, 1000, [batch]);
const trainStep = (precision: Precision) => (): void =>
  tidy(() => {
    model.train();
    const { loss } = withAutocast(precision, () => flowLoss((x, t) => model.forward(x, t, { y }), x1));
    opt.zeroGrad();
    loss.backward();
    opt.step();
  });
const sampleStep = (precision: Precision) => (): void =>
  noGrad(() =>
    tidy(() => {
      model.eval();
      const x = randn([batch, 1, 768]);
      const v = withAutocast(precision, () => guidedVelocity(classField(model, y), x, full([batch], 0.5), 1.5));
      void x.add(v.float().mul(0.02));
    }),
  );

emit({
  bench: 'generator',
  params_m: model.numParameters() / 1e6,
  sample_weights: packed ? 'float32 sampling on weights packed for inference' : 'float32 sampling on sgemm',
});
await comparePhases({
  bench: 'generator',
  script: 'generator.py',
  phases: [
    { name: 'train_step', fp32: trainStep('fp32'), bf16: trainStep('bf16'), run: 'train_step', iters: 1 },
    { name: 'sample_step', fp32: sampleStep('fp32'), bf16: sampleStep('bf16'), run: 'sample_step', iters: 3 },
  ],
  request: { batch },
  profileTop: 25,
  targets: { vsPeer: 'train_step <= 1.0, sample_step <= 0.9', vsFp32: '<= 0.5' },
});
