// npm run bench:tokenizer — RepTok stage A on the mid-size configuration (DINOv2-S/14-reg at 112 px from 128×128,
// decoder width 384, depth 6, head dim 64, mapping 256×2, latent 4×16×16): one training step (forward + backward
// + AdamW, batch 8) and one decoder evaluation, each paired with the same in PyTorch (bench/peer/tokenizer.py, run
// with OMP_WAIT_POLICY=PASSIVE). JSON lines with impl, batch, train_step_s, decoder_nfe_s (medians);
// `--impl reptok` skips the peer; `--profile` prints reptok's operator profile of one step. Target: ≤ 0.8×.
import { formatProfile, full, getNumThreads, manualSeed, noGrad, profile, rand, randn, tidy } from '../src/index.ts';
import { AdamW } from '../src/optim/index.ts';
import { RepTokTokenizer, reptokMid } from '../src/models/tokenizer.ts';
import { Peer, benchArgs, emit, pairedPhases } from './peer.ts';

const args = benchArgs();
const batch = Number(args.get('batch', '8'));
const pairs = Number(args.get('pairs', '5'));
const threads = getNumThreads();

manualSeed(0);
// the flow runs on given latents 4×16×16 (a VAE encoder would precede it in latent mode)
const tok = noGrad(
  () => new RepTokTokenizer(reptokMid({ space: 'pixel', imageSize: [16, 16], imageChannels: 4, vae: null })),
).train();
const opt = new AdamW(
  tok.trainableParameters().map(([, p]) => p),
  { lr: 1e-4 },
);
const x = rand([batch, 3, 128, 128]).mul(2).sub(1);
const latent = randn([batch, 4, 16, 16]);
const token = randn([batch, 384]);

const trainStep = (): void =>
  tidy(() => {
    const { total } = tok.loss(x, { grid: latent });
    opt.zeroGrad();
    total.backward();
    opt.step();
  });
const decoderNfe = (): void =>
  noGrad(() => tidy(() => void tok.velocity(randn([batch, 4, 16, 16]), full([batch], 0.5), tok.condition(token))));

if (process.argv.includes('--profile')) {
  trainStep();
  const { ops } = profile(trainStep, { shapes: true });
  console.error(formatProfile(ops, Number(args.get('top', '40'))));
}

const peer = args.impl === 'reptok' ? null : Peer.start('tokenizer.py', ['--threads', String(threads)]);
const r = await pairedPhases(
  peer,
  args.impl,
  pairs,
  [
    { name: 'train_step_s', ours: trainStep, run: 'train_step', iters: 1 },
    { name: 'decoder_nfe_s', ours: decoderNfe, run: 'decoder_nfe', iters: 5 },
  ],
  { batch },
);
peer?.close();
for (const impl of ['reptok', 'pytorch'] as const) {
  if (r.train_step_s![impl] !== undefined)
    emit({
      bench: 'tokenizer',
      impl,
      batch,
      train_step_s: r.train_step_s![impl],
      decoder_nfe_s: r.decoder_nfe_s![impl],
      threads,
    });
}
if (args.impl === 'both')
  emit({
    bench: 'tokenizer',
    summary: 'reptok_time/pytorch_time, median of paired runs',
    train_step: r.train_step_s!.ratio,
    decoder_nfe: r.decoder_nfe_s!.ratio,
    pairs,
    target: '<= 0.8',
  });
