// npm run bench:tokenizer — RepTok stage A on the mid-size configuration (DINOv2-S/14-reg at 112 px from 128×128,
// decoder width 384, depth 6, head dim 64, mapping 256×2, latent 4×16×16): one training step (forward + backward
// + AdamW, batch 8) and one decoder evaluation, each paired with the same in PyTorch (bench/peer/tokenizer.py, run
// with OMP_WAIT_POLICY=PASSIVE). JSON lines with impl, precision, batch, train_step_s, decoder_nfe_s (medians).
//   --bf16      both sides in bf16 (our autocast; the peer under torch.autocast), and our bf16 against our float32
//   --busy      everything again while another process keeps one core busy; each side's slowdown
//   --impl reptok   skips the peer;   --profile   prints reptok's operator profile of one step
// Targets (issue #17): float32 ≤ 0.8× the peer; bf16 ≤ 0.8× the bf16 peer, and ≤ 0.5× (training step) / ≤ 0.35×
// (decoder evaluation) our own float32.
import { full, manualSeed, noGrad, rand, randn, tidy } from '../src/index.ts';
import { AdamW } from '../src/optim/index.ts';
import { RepTokTokenizer, reptokMid } from '../src/models/tokenizer.ts';
import { withAutocast, type Precision } from '../src/train/autocast.ts';
import { benchArgs, comparePhases } from './peer.ts';

const args = benchArgs();
const batch = Number(args.get('batch', '8'));

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

const trainStep = (precision: Precision) => (): void =>
  tidy(() => {
    const { total } = withAutocast(precision, () => tok.loss(x, { grid: latent }));
    opt.zeroGrad();
    total.backward();
    opt.step();
  });
const decoderNfe = (precision: Precision) => (): void =>
  noGrad(() =>
    tidy(() =>
      withAutocast(precision, () => {
        void tok.velocity(randn([batch, 4, 16, 16]), full([batch], 0.5), tok.condition(token));
      }),
    ),
  );

await comparePhases({
  bench: 'tokenizer',
  script: 'tokenizer.py',
  phases: [
    { name: 'train_step', fp32: trainStep('fp32'), bf16: trainStep('bf16'), run: 'train_step', iters: 1 },
    { name: 'decoder_nfe', fp32: decoderNfe('fp32'), bf16: decoderNfe('bf16'), run: 'decoder_nfe', iters: 5 },
  ],
  request: { batch },
  profileTop: 40,
  targets: { vsPeer: '<= 0.8', vsFp32: 'train_step <= 0.5, decoder_nfe <= 0.35' },
});
