// npm run bench:tokenizer-xl — the paper's tokenizer (reptok-xl: DINOv2-B/14-reg, decoder width 1152, depth 28,
// SD-VAE latents 4×32×32) and generator (mixer-xl, 1000 classes) instantiated on this machine (random weights), the
// architecture of the released checkpoint: encode and decode one 256×256 image, sample one token. Prints parameter
// counts, the encoder time, the time of one decoder step (one velocity evaluation), the VAE decoding time, a full
// `--steps N` Euler decode, 50 guided generator steps, and the estimated time per reconstruction and per sample with
// the release's 50 decoder steps (JSON lines).
import { full, getNumThreads, manualSeed, noGrad, rand, randn, tensor, tidy } from '../src/index.ts';
import { tokenizer } from '../src/models/tokenizer.ts';
import { classField, generatorModel } from '../src/models/generator.ts';
import { generate } from '../src/flow/token-flow.ts';
import { benchArgs, emit, timeMedian } from './peer.ts';

const args = benchArgs();
const steps = Number(args.get('steps', '2'));
const seconds = (fn: () => unknown): number => {
  const t0 = performance.now();
  fn();
  return (performance.now() - t0) / 1000;
};
/** CPU seconds (all threads, user + system) that `fn` takes: the cost on a shared machine, where wall time is noise. */
const cpuSeconds = (fn: () => unknown): number => {
  const c0 = process.cpuUsage();
  fn();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1e6;
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
      precision: 'fp32',
      encode_s: encodeS,
      decoder_step_s: stepS,
      vae_decode_s: vaeS,
      decode_steps: nfe,
      decode_total_s: decodeS,
      paper_steps_estimate_s: 50 * stepS + vaeS,
    });
    const gen = generatorModel('mixer-xl').eval();
    const sample = (): unknown =>
      generate(classField(gen, tensor([207], { dtype: 'int64' })), randn([1, 1, 768]), {
        steps: 50,
        guidance: { scale: 1.5, interval: [0.3, 0.9] },
      });
    tidy(sample); // warm-up
    const sampleS = seconds(() => tidy(sample));
    const cpu = {
      encode: cpuSeconds(() => tidy(() => tok.encode(image))),
      step: cpuSeconds(() => tidy(() => void tok.velocity(z, full([1], 0.5), cond))),
      vae: cpuSeconds(() => tidy(() => void tok.fromGrid(z))),
      sample: cpuSeconds(() => tidy(sample)),
    };
    emit({
      bench: 'tokenizer_xl',
      precision: 'fp32',
      params_generator_m: [...gen.parameters()].reduce((s, p) => s + p.numel, 0) / 1e6,
      generator_50_guided_steps_s: sampleS,
      per_reconstruction_estimate_s: encodeS + 50 * stepS + vaeS,
      per_sample_estimate_s: sampleS + 50 * stepS + vaeS,
      cpu_encode_s: cpu.encode,
      cpu_decoder_step_s: cpu.step,
      cpu_vae_decode_s: cpu.vae,
      cpu_generator_50_guided_steps_s: cpu.sample,
      cpu_per_reconstruction_estimate_s: cpu.encode + 50 * cpu.step + cpu.vae,
      cpu_per_sample_estimate_s: cpu.sample + 50 * cpu.step + cpu.vae,
    });
  }),
);
