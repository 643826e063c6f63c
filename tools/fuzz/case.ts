// The child side of hostile-input runs: loads one input (or runs one kernel case) and reports how it ended. Run by
// tools/fuzz/supervise.ts, never in the caller's process: a crash, a hang or a memory bomb ends only this child.
//
//   case.ts <kind> <file-or-json> [options-json]   one case; the report is sent over IPC (printed without IPC)
//   case.ts --serve                                 many cases over IPC: {id, kind, arg} -> {id, started}, {id, ...}
//
// Kinds: safetensors, pth (loadStateDictFile), torch (loadTorchCheckpoint), image (readImage), kernel (a fused op
// on given shapes, forward and backward), worker (terminates worker threads busy with tensor ops), outdir
// (makeOutputDir).
import { Worker } from 'node:worker_threads';

import { F, Tensor, aten, randn, tidy } from '../../src/index.ts';
import { loadSafetensors } from '../../src/io/safetensors.ts';
import { loadStateDictFile } from '../../src/io/checkpoint-file.ts';
import { loadTorchCheckpoint } from '../../src/io/torch-checkpoint.ts';
import { readImage } from '../../src/io/image.ts';
import { makeOutputDir } from '../../src/io/out-dir.ts';

export interface Report {
  ok: boolean;
  /** The error message when !ok. */
  error?: string;
  /** Whether that message shows JavaScript internals instead of saying what was wrong. */
  internal?: boolean;
  /** What was loaded: tensor names -> shape and (small ones) values. */
  detail?: unknown;
  maxRssMb: number;
}

/** Messages that leak the engine instead of naming the problem. */
const INTERNAL = new RegExp(
  [
    'Cannot mix BigInt',
    'Cannot read properties',
    'Cannot convert',
    'Maximum call stack',
    'is not a function',
    'is not iterable',
    'Invalid (typed )?array length',
    'undefined',
    '\\[object ',
  ].join('|'),
);

function summary(tensors: Map<string, Tensor>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, t] of tensors) {
    out[k] = { shape: t.shape, values: t.numel <= 16 ? t.flatten().toArray() : undefined };
    t.dispose();
  }
  return out;
}

function flatTensors(obj: unknown): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  if (obj instanceof Map) for (const [k, v] of obj) if (v instanceof Tensor) out.set(String(k), v);
  return out;
}

type KernelCase = {
  op: 'rmsNorm' | 'swiglu' | 'cosineRopeQK' | 'attention' | 'linear';
  shapes: number[][];
  /** Call the native operator itself (reptok::...), not F.*, which may pick the composite for some shapes. */
  native?: boolean;
  /** Activations in bfloat16 (q, k, v; the other ops' first input), parameters float32: what autocast passes. */
  bf16?: boolean;
};

const NATIVE_OPS = {
  rmsNorm: 'reptok::rms_norm',
  swiglu: 'reptok::swiglu',
  cosineRopeQK: 'reptok::cosine_rope_qk',
  attention: 'reptok::attention',
  linear: 'reptok::linear',
} as const;

function kernel(c: KernelCase): unknown {
  return tidy(() => {
    const activations = c.op === 'attention' ? 3 : 1;
    const xs = c.shapes.map((s, i) => (c.bf16 && i < activations ? randn(s).to('bfloat16') : randn(s)).requiresGrad_());
    const out: Tensor[] = (() => {
      if (c.native) {
        const extra =
          c.op === 'rmsNorm' ? [1e-6] : c.op === 'attention' ? [1] : c.op === 'linear' && xs.length < 3 ? [null] : [];
        const r: Tensor | Tensor[] = aten(NATIVE_OPS[c.op], ...xs, ...extra);
        return Array.isArray(r) ? r : [r];
      }
      switch (c.op) {
        case 'rmsNorm':
          return [F.rmsNorm(xs[0]!, xs[1]!)];
        case 'swiglu':
          return [F.swiglu(xs[0]!)];
        case 'cosineRopeQK':
          return F.cosineRopeQK(xs[0]!, xs[1]!, xs[2]!, xs[3]!);
        case 'attention':
          return [F.scaledDotProductAttention(xs[0]!, xs[1]!, xs[2]!)];
        case 'linear':
          return [F.linear(xs[0]!, xs[1]!, xs[2] ?? null)];
      }
    })();
    const loss = out.map((t) => t.sum()).reduce((a, b) => a.add(b));
    loss.backward();
    return { shapes: out.map((t) => t.shape) };
  });
}

async function workerTermination(): Promise<unknown> {
  // workers busy with tensor ops are terminated mid-op (at staggered moments); the main thread must live on
  const workers = Array.from({ length: 4 }, () => new Worker(new URL('./busy-worker.mjs', import.meta.url)));
  await Promise.all(
    workers.map(
      (w) => new Promise<void>((resolve, reject) => (w.once('message', () => resolve()), w.once('error', reject))),
    ),
  );
  for (const [i, w] of workers.entries()) {
    await new Promise((r) => setTimeout(r, 5 + 20 * i));
    await w.terminate();
  }
  return { mainAlive: tidy(() => randn([8, 8]).matmul(randn([8, 8])).shape) };
}

export async function runCase(kind: string, arg: string, options: Record<string, unknown> = {}): Promise<Report> {
  const rss = (): number => Math.round(process.resourceUsage().maxRSS / 1024);
  try {
    let detail: unknown;
    if (kind === 'safetensors') detail = summary(loadSafetensors(arg).tensors);
    else if (kind === 'pth') detail = summary(loadStateDictFile(arg));
    else if (kind === 'torch') detail = summary(flatTensors(loadTorchCheckpoint(arg, options)));
    else if (kind === 'image') {
      const t = await readImage(arg, options);
      detail = t.shape;
      t.dispose();
    } else if (kind === 'kernel') detail = kernel(JSON.parse(arg) as KernelCase);
    else if (kind === 'worker') detail = await workerTermination();
    else if (kind === 'outdir') detail = makeOutputDir(arg);
    else throw new Error(`unknown case kind '${kind}'`);
    return { ok: true, detail, maxRssMb: rss() };
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    return { ok: false, error: message, internal: INTERNAL.test(message), maxRssMb: rss() };
  }
}

if (process.argv[2] === '--serve') {
  process.on('message', async (m: { id: number; kind: string; arg: string; options?: Record<string, unknown> }) => {
    process.send!({ id: m.id, started: true });
    process.send!({ id: m.id, ...(await runCase(m.kind, m.arg, m.options)) });
  });
} else if (process.argv[2]) {
  const report = await runCase(process.argv[2], process.argv[3] ?? '', JSON.parse(process.argv[4] ?? '{}'));
  if (process.send) process.send(report, () => process.exit(0));
  else console.log(JSON.stringify(report)); // run by hand: node --import tsx tools/fuzz/case.ts pth failing.pth
}
