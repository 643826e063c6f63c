// npm run bench:dinov2 — forward throughput (images/s) of DINOv2 ViT-S/14 and ViT-B/14 with registers at 224×224,
// batch 8, random weights, against the same architecture in PyTorch in the same invocation: each reptok forward is
// paired with a peer forward and the per-pair ratios are summarised. JSON lines with impl, model, img_per_s;
// `--impl reptok` skips the peer. Target: reptok / PyTorch throughput ≥ 0.95.
import { getNumThreads, manualSeed, noGrad, randn, tidy } from '../src/index.ts';
import { dinov2 } from '../src/models/dinov2.ts';
import { Peer, benchArgs, emit, median, paired, spread, timeMedian } from './peer.ts';

const args = benchArgs();
const pairs = Number(args.get('pairs', '5'));
const batch = Number(args.get('batch', '8'));
const size = Number(args.get('size', '224'));
const models = args.get('models', 'vits14_reg,vitb14_reg').split(',');
const threads = getNumThreads();
const peer = args.impl === 'reptok' ? null : Peer.start('dinov2.py', ['--threads', String(threads)]);

manualSeed(0);
const x = randn([batch, 3, size, size]);
for (const model of models) {
  const net = dinov2(`dinov2_${model}` as 'dinov2_vits14_reg').eval();
  const forward = (): void => noGrad(() => tidy(() => void net.forward(x)));
  let warm = 1;
  const r = await paired(
    pairs,
    args.impl === 'pytorch' ? null : () => timeMedian(forward, 1, warm > 0 ? 1 : 0),
    peer
      ? async () =>
          (await peer.request({ run: 'forward', model, batch, size, iters: 1, warmup: warm-- > 0 ? 1 : 0 }))
            .seconds as number
      : null,
  );
  const line = { bench: 'dinov2_forward', model, batch, size, precision: 'fp32', threads };
  if (r.ours.length) emit({ ...line, impl: 'reptok', img_per_s: batch / median(r.ours) });
  if (r.peer.length) emit({ ...line, impl: 'pytorch', img_per_s: batch / median(r.peer) });
  if (r.ratios.length)
    emit({
      ...line,
      summary: 'reptok_img_per_s/pytorch_img_per_s, median of paired runs',
      value: 1 / median(r.ratios),
      range: spread(r.ratios.map((x) => 1 / x)),
      pairs,
      target: '>= 0.95',
    });
  net.dispose();
}
peer?.close();
