// npm run bench:engine — GEMM throughput, linear layers (forward + backward) on the mid-size tokenizer's shapes in
// float32 and under bf16 autocast (PyTorch: torch.autocast('cpu', dtype=torch.bfloat16)), and a transformer block's
// training step (forward + backward + AdamW, batch 16, 64 tokens, width 384, 6 heads), reptok against the same
// workloads in PyTorch in the same invocation.
// Each measurement is paired with the peer's (a persistent PyTorch process) and the per-pair ratios are
// summarised. JSON lines; `--impl reptok` skips the peer. Targets: GEMM within 5% of PyTorch, block ratio ≤ 1.05.
import { F, autocast, getNumThreads, manualSeed, randn, runtimeInfo, tidy } from '../src/index.ts';
import { TransformerBlock } from '../src/nn/index.ts';
import { AdamW } from '../src/optim/index.ts';
import { Peer, benchArgs, emit, emitKernels, median, paired, spread, timeMedian } from './peer.ts';

const args = benchArgs();
const iters = Number(args.get('iters', '5'));
const pairs = Number(args.get('pairs', '5'));
const sizes = args.get('sizes', '256,512,1024,2048').split(',').map(Number);
const threads = getNumThreads();

const info = runtimeInfo();
emitKernels('engine');
const peer = args.impl === 'reptok' ? null : Peer.start('engine.py', ['--threads', String(threads)]);
const ask = async (req: Record<string, unknown>): Promise<number> => (await peer!.request(req)).seconds as number;
const report = (
  bench: string,
  fields: Record<string, unknown>,
  r: { ours: number[]; peer: number[]; ratios: number[] },
  work?: number,
): void => {
  const perf = (s: number): Record<string, number> => (work ? { gflops: work / s / 1e9 } : { seconds: s });
  if (r.ours.length)
    emit({ bench, impl: 'reptok', ...fields, ...perf(median(r.ours)), libtorch: info.libtorch, threads });
  if (r.peer.length) emit({ bench, impl: 'pytorch', ...fields, ...perf(median(r.peer)), threads });
  if (r.ratios.length)
    emit({
      bench,
      ...fields,
      summary: 'reptok_time/pytorch_time, median of paired runs',
      value: median(r.ratios),
      range: spread(r.ratios),
      pairs: r.ratios.length,
      target: bench === 'linear' ? '—' : '<= 1.05',
    });
};

for (const n of sizes) {
  const [x, y] = [randn([n, n]), randn([n, n])];
  const reps = n < 2048 ? iters : 3;
  let warm = 2;
  const r = await paired(
    pairs,
    args.impl === 'pytorch' ? null : () => timeMedian(() => tidy(() => void x.mm(y)), reps, 2),
    peer ? () => ask({ run: 'gemm', n, iters: reps, warmup: warm-- > 0 ? 2 : 0 }) : null,
  );
  report('gemm', { n, precision: 'fp32' }, r, 2 * n ** 3);
  x.dispose();
  y.dispose();
}

// the mid-size tokenizer's layers: DINOv2-S's qkv / fc1 / fc2 over 8 × 69 tokens, the decoder's SwiGLU input
for (const [m, k, n] of [
  [552, 384, 1152],
  [552, 384, 1536],
  [552, 1536, 384],
  [520, 384, 2304],
] as const) {
  for (const bf16 of [false, true]) {
    const x = randn([m, k]).requiresGrad_(true);
    const [w, b] = [randn([n, k]).requiresGrad_(true), randn([n]).requiresGrad_(true)];
    const gy = randn([m, n]);
    const step = (): void =>
      tidy(() => {
        const y = bf16 ? autocast(() => F.linear(x, w, b)) : F.linear(x, w, b);
        y.backward(gy.to(y.dtype));
      });
    let warm = 2;
    const r = await paired(
      pairs,
      args.impl === 'pytorch' ? null : () => timeMedian(step, iters, 2),
      peer ? () => ask({ run: 'linear', m, k, n, bf16, iters, warmup: warm-- > 0 ? 2 : 0 }) : null,
    );
    report('linear', { m, k, n, precision: bf16 ? 'bf16' : 'fp32', pass: 'forward+backward' }, r, 3 * 2 * m * k * n);
    for (const t of [x, w, b, gy]) t.dispose();
  }
}

manualSeed(0);
const blk = new TransformerBlock(384, 6);
const opt = new AdamW(blk.parameters(), { lr: 1e-4 });
const xb = randn([16, 64, 384]);
const yb = randn([16, 64, 384]);
const blockStep = (): void =>
  tidy(() => {
    const loss = F.mseLoss(blk.forward(xb), yb);
    opt.zeroGrad();
    loss.backward();
    opt.step();
  });
let first = true;
const r = await paired(
  pairs,
  args.impl === 'pytorch' ? null : () => timeMedian(blockStep, 3, first ? ((first = false), 2) : 0),
  peer ? () => ask({ run: 'block_step', iters: 3, warmup: 2 }) : null,
);
report('block_step', { batch: 16, tokens: 64, width: 384, heads: 6, precision: 'fp32' }, r);
peer?.close();
