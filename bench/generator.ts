// npm run bench:generator — the paper-scale MLP-Mixer generator (token 768, dim 1152, depth 28, expansions 3/4,
// 1000 classes): a training step (forward + backward + AdamW) and one guided sampling step (conditional and
// unconditional in one batched call), batch 64, each paired with the same in PyTorch (bench/peer/generator.py).
// JSON lines with impl, batch, train_step_s, sample_step_s; `--impl reptok` skips the peer. Target: ratio ≤ 1.0.
import { formatProfile, full, getNumThreads, manualSeed, noGrad, profile, randint, randn, tidy } from '../src/index.ts';
import { AdamW } from '../src/optim/index.ts';
import { classField, generatorModel } from '../src/models/generator.ts';
import { flowLoss } from '../src/flow/token-flow.ts';
import { guidedVelocity } from '../src/flow/guidance.ts';
import { Peer, benchArgs, emit, median, paired, timeMedian } from './peer.ts';

const args = benchArgs();
const batch = Number(args.get('batch', '64'));
const pairs = Number(args.get('pairs', '5'));
const threads = getNumThreads();

manualSeed(0);
const model = noGrad(() => generatorModel('mixer-xl'));
const opt = new AdamW(model.parameters(), { lr: 1e-4 });
const x1 = randn([batch, 1, 768]);
const y = randint(0, 1000, [batch]);
const trainStep = (): void => tidy(() => {
  model.train();
  const { loss } = flowLoss((x, t) => model.forward(x, t, { y }), x1);
  opt.zeroGrad();
  loss.backward();
  opt.step();
});
const sampleStep = (): void => noGrad(() => tidy(() => {
  model.eval();
  const x = randn([batch, 1, 768]);
  void x.add(guidedVelocity(classField(model, y), x, full([batch], 0.5), 1.5).mul(0.02));
}));

if (process.argv.includes('--profile')) {
  trainStep();
  console.error(formatProfile(profile(trainStep, { shapes: true }).ops, 25));
}

emit({ bench: 'generator', params_m: model.numParameters() / 1e6 });
const peer = args.impl === 'reptok' ? null : Peer.start('generator.py', ['--threads', String(threads)]);
const results: Record<string, number> = {};
for (const [name, fn, run, iters] of [['train_step_s', trainStep, 'train_step', 1], ['sample_step_s', sampleStep, 'sample_step', 3]] as const) {
  let warm = 1;
  const r = await paired(
    pairs,
    args.impl === 'pytorch' ? null : () => timeMedian(fn, iters, warm > 0 ? 2 : 0),
    peer ? async () => (await peer.request({ run, batch, iters, warmup: warm-- > 0 ? 2 : 0 })).seconds as number : null,
  );
  if (r.ours.length) results[`reptok_${name}`] = median(r.ours);
  if (r.peer.length) results[`pytorch_${name}`] = median(r.peer);
  if (r.ratios.length) results[`ratio_${name}`] = median(r.ratios);
}
peer?.close();
if (args.impl !== 'pytorch') emit({ bench: 'generator', impl: 'reptok', batch, train_step_s: results.reptok_train_step_s, sample_step_s: results.reptok_sample_step_s, threads });
if (args.impl !== 'reptok') emit({ bench: 'generator', impl: 'pytorch', batch, train_step_s: results.pytorch_train_step_s, sample_step_s: results.pytorch_sample_step_s, threads });
if (args.impl === 'both') emit({ bench: 'generator', summary: 'reptok_time/pytorch_time, median of paired runs', train_step: results.ratio_train_step_s, sample_step: results.ratio_sample_step_s, pairs, target: '<= 1.0' });
