// npm run bench:generator — the paper-scale MLP-Mixer generator (token 768, dim 1152, depth 28, expansions 3/4,
// 1000 classes): a training step (forward + backward + AdamW) and one guided sampling step (conditional and
// unconditional in one batched call), batch 64, each paired with the same in PyTorch (bench/peer/generator.py).
// JSON lines with impl, batch, train_step_s, sample_step_s; `--impl reptok` skips the peer. Target: ratio ≤ 1.0.
import { formatProfile, full, getNumThreads, manualSeed, noGrad, profile, randint, randn, tidy } from '../src/index.ts';
import { AdamW } from '../src/optim/index.ts';
import { classField, generatorModel } from '../src/models/generator.ts';
import { flowLoss } from '../src/flow/token-flow.ts';
import { guidedVelocity } from '../src/flow/guidance.ts';
import { Peer, benchArgs, emit, pairedPhases } from './peer.ts';

const args = benchArgs();
const batch = Number(args.get('batch', '64'));
const pairs = Number(args.get('pairs', '5'));
const threads = getNumThreads();

manualSeed(0);
const model = noGrad(() => generatorModel('mixer-xl'));
const opt = new AdamW(model.parameters(), { lr: 1e-4 });
const x1 = randn([batch, 1, 768]);
const y = randint(0, 1000, [batch]);
const trainStep = (): void =>
  tidy(() => {
    model.train();
    const { loss } = flowLoss((x, t) => model.forward(x, t, { y }), x1);
    opt.zeroGrad();
    loss.backward();
    opt.step();
  });
const sampleStep = (): void =>
  noGrad(() =>
    tidy(() => {
      model.eval();
      const x = randn([batch, 1, 768]);
      void x.add(guidedVelocity(classField(model, y), x, full([batch], 0.5), 1.5).mul(0.02));
    }),
  );

if (process.argv.includes('--profile')) {
  trainStep();
  console.error(formatProfile(profile(trainStep, { shapes: true }).ops, 25));
}

const peer = args.impl === 'reptok' ? null : Peer.start('generator.py', ['--threads', String(threads)]);
emit({ bench: 'generator', params_m: model.numParameters() / 1e6 });
const r = await pairedPhases(
  peer,
  args.impl,
  pairs,
  [
    { name: 'train_step_s', ours: trainStep, run: 'train_step', iters: 1 },
    { name: 'sample_step_s', ours: sampleStep, run: 'sample_step', iters: 3 },
  ],
  { batch },
);
peer?.close();
for (const impl of ['reptok', 'pytorch'] as const) {
  if (r.train_step_s![impl] !== undefined)
    emit({
      bench: 'generator',
      impl,
      batch,
      train_step_s: r.train_step_s![impl],
      sample_step_s: r.sample_step_s![impl],
      threads,
    });
}
if (args.impl === 'both')
  emit({
    bench: 'generator',
    summary: 'reptok_time/pytorch_time, median of paired runs',
    train_step: r.train_step_s!.ratio,
    sample_step: r.sample_step_s!.ratio,
    pairs,
    target: '<= 1.0',
  });
