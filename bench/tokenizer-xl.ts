// npm run bench:tokenizer-xl — the paper's tokenizer (reptok-xl: DINOv2-B/14-reg, decoder width 1152, depth 28,
// SD-VAE latents 4×32×32) instantiated on this machine (random weights) and used to encode and decode one 256×256
// image. Prints parameter counts, the encoder time, the time of one decoder step (one velocity evaluation), the
// VAE decoding time and a full `--steps N` Euler decode (JSON lines).
import { full, getNumThreads, manualSeed, noGrad, rand, randn, tidy } from '../src/index.ts';
import { tokenizer } from '../src/models/tokenizer.ts';
import { benchArgs, emit, timeMedian } from './peer.ts';

const args = benchArgs();
const steps = Number(args.get('steps', '2'));
const seconds = (fn: () => unknown): number => {
  const t0 = performance.now();
  fn();
  return (performance.now() - t0) / 1000;
};

manualSeed(0);
let tok!: ReturnType<typeof tokenizer>;
const buildS = seconds(() => (tok = tokenizer('reptok-xl').eval()));
const count = (prefix: string): number =>
  [...tok.namedParameters()].filter(([k]) => k.startsWith(prefix)).reduce((s, [, p]) => s + p.numel, 0);
emit({
  bench: 'tokenizer_xl',
  threads: getNumThreads(),
  build_s: buildS,
  params_decoder_m: (count('backbone.') + count('time_in_proj.') + count('mapping.')) / 1e6,
  params_encoder_m: count('encoder.dino.model.') / 1e6,
  params_vae_m: count('ae.') / 1e6,
});

const image = rand([1, 3, 256, 256]).mul(2).sub(1);
noGrad(() =>
  tidy(() => {
    let token = tok.encode(image);
    const encodeS = seconds(() => (token = tok.encode(image)));
    const cond = tok.condition(token);
    const z = randn([1, ...tok.gridShape]);
    const stepS = timeMedian(() => tidy(() => void tok.velocity(z, full([1], 0.5), cond)), 3, 1);
    const vaeS = seconds(() => tidy(() => void tok.fromGrid(z)));
    let nfe = 0;
    const decodeS = seconds(() => tidy(() => void (nfe = tok.decode(token, { steps }).nfe)));
    emit({
      bench: 'tokenizer_xl',
      encode_s: encodeS,
      decoder_step_s: stepS,
      vae_decode_s: vaeS,
      decode_steps: nfe,
      decode_total_s: decodeS,
      paper_steps_estimate_s: 50 * stepS + vaeS,
    });
  }),
);
