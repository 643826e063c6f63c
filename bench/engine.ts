// npm run bench:engine — GEMM throughput and a transformer block's training step (forward + backward + AdamW,
// batch 16, 64 tokens, width 384, 6 heads), reptok against the same workloads in PyTorch in the same invocation.
// Prints JSON lines (one per measurement and round, then summaries); `--impl reptok` skips the peer. Each
// measurement alternates with the peer's (a persistent PyTorch process), for `--rounds N` rounds (default 3). Targets: GEMM within 5% of PyTorch, block ratio ≤ 1.05.
import { F, Tensor, getNumThreads, randn, runtimeInfo, tidy, manualSeed } from '../src/index.ts';
import { LayerNorm, Linear, Module } from '../src/nn/index.ts';
import { AdamW } from '../src/optim/index.ts';
import { Peer, benchArgs, emit, settle, summarize, timeMedian } from './peer.ts';

const args = benchArgs();
const iters = Number(args.get('iters', '10'));
const sizes = args.get('sizes', '256,512,1024,2048');
const rounds = Number(args.get('rounds', '3'));
const threads = getNumThreads();
manualSeed(0);

class Block extends Module {
  readonly norm1: LayerNorm;
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly norm2: LayerNorm;
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(dim: number, readonly heads: number) {
    super();
    this.norm1 = this.module('norm1', new LayerNorm(dim));
    this.qkv = this.module('qkv', new Linear(dim, 3 * dim));
    this.proj = this.module('proj', new Linear(dim, dim));
    this.norm2 = this.module('norm2', new LayerNorm(dim));
    this.fc1 = this.module('fc1', new Linear(dim, 4 * dim));
    this.fc2 = this.module('fc2', new Linear(4 * dim, dim));
  }

  forward(x: Tensor): Tensor {
    const [B, N, C] = x.shape as [number, number, number];
    const [q, k, v] = this.qkv.forward(this.norm1.forward(x)).reshape(B, N, 3, this.heads, C / this.heads).permute(2, 0, 3, 1, 4).unbind(0) as [Tensor, Tensor, Tensor];
    const a = F.scaledDotProductAttention(q, k, v).transpose(1, 2).reshape(B, N, C); // (B, N, C)
    const h = x.add(this.proj.forward(a));
    return h.add(this.fc2.forward(F.gelu(this.fc1.forward(this.norm2.forward(h)))));
  }
}

const info = runtimeInfo();
manualSeed(0);
const blk = new Block(384, 6);
const opt = new AdamW(blk.parameters(), { lr: 1e-4 });
const xb = randn([16, 64, 384]);
const yb = randn([16, 64, 384]);
const blockStep = (): void => tidy(() => {
  const loss = F.mseLoss(blk.forward(xb), yb);
  opt.zeroGrad();
  loss.backward();
  opt.step();
});

function gemm(n: number, reps: number): Record<string, unknown> {
  const [x, y] = [randn([n, n]), randn([n, n])];
  const s = timeMedian(() => tidy(() => void x.mm(y)), reps);
  x.dispose();
  y.dispose();
  return { bench: 'gemm', impl: 'reptok', n, gflops: (2 * n ** 3) / s / 1e9, libtorch: info.libtorch, threads };
}

const peer = args.impl === 'reptok' ? null : Peer.start('engine.py', ['--threads', String(threads)]);
const lines: Record<string, unknown>[] = [];
const record = (o: Record<string, unknown>, round: number): void => {
  lines.push(o);
  emit({ ...o, round });
};
for (let round = 0; round < rounds; round++) {
  for (const n of sizes.split(',').map(Number)) {
    const reps = n < 2048 ? iters : 3;
    if (args.impl !== 'pytorch') record((await settle(), gemm(n, reps)), round);
    if (peer) record(await peer.request({ run: 'gemm', n, iters: reps }), round);
  }
  if (args.impl !== 'pytorch') await settle();
  if (args.impl !== 'pytorch') record({ bench: 'block_step', impl: 'reptok', batch: 16, tokens: 64, width: 384, heads: 6, step_s: timeMedian(blockStep, iters) }, round);
  if (peer) record(await peer.request({ run: 'block_step', iters }), round);
}
peer?.close();

if (args.impl === 'both') {
  for (const n of sizes.split(',').map(Number)) {
    const r = summarize(lines, { bench: 'gemm', impl: 'reptok', n }, 'gflops') / summarize(lines, { bench: 'gemm', impl: 'pytorch', n }, 'gflops');
    emit({ bench: 'gemm', n, summary: 'reptok_gflops/pytorch_gflops (median over rounds)', value: r, target: '>= 0.95' });
  }
  const r = summarize(lines, { bench: 'block_step', impl: 'reptok' }, 'step_s') / summarize(lines, { bench: 'block_step', impl: 'pytorch' }, 'step_s');
  emit({ bench: 'block_step', summary: 'reptok_time/pytorch_time (median over rounds)', value: r, target: '<= 1.05' });
}
