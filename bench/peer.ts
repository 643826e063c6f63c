// Runs a PyTorch peer script (bench/peer/*.py) in the same invocation and collects its JSON lines, so reptok is
// compared with the same model in PyTorch on the same machine at the same time.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { formatProfile, profile, runtimeInfo } from '../src/index.ts';
import type { Precision } from '../src/train/autocast.ts';

const here = dirname(fileURLToPath(import.meta.url));

/** Debian's python3 has python3-torch; a python3 earlier on PATH (pyenv) usually does not. Also its torch version. */
function python(): { exe: string; torch: string } {
  for (const exe of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(exe, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
    if (r.status === 0) return { exe, torch: r.stdout.trim() };
  }
  throw new Error(
    'no python3 with PyTorch found: install it with `apt-get install python3-torch` ' +
      '(the bench:* scripts do this), or pass --impl reptok to skip the peer',
  );
}

/**
 * A PyTorch peer process serving measurement requests over stdin/stdout (one JSON line each way). Requests are
 * interleaved with reptok's own measurements, so both sides see the same machine state: this machine is noisy, and
 * measuring one side after the other confounds load spikes with speed.
 */
export class Peer {
  readonly #proc: ChildProcessWithoutNullStreams;
  readonly #lines: AsyncIterator<string>;

  private constructor(proc: ChildProcessWithoutNullStreams) {
    this.#proc = proc;
    this.#lines = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  }

  /** `precision` 'bf16': the peer runs its forward passes under torch.autocast('cpu', dtype=torch.bfloat16). */
  static start(script: string, args: string[], precision: Precision = 'fp32'): Peer {
    // The same runtime environment as reptok: process.env already holds what src/engine/native.ts set before loading
    // libtorch (OPENBLAS_CORETYPE, OPENBLAS_THREAD_TIMEOUT), and OMP_WAIT_POLICY=PASSIVE is forced for PyTorch too,
    // so both sides run with the same threading behaviour and the same BLAS kernels. When the addon tuned glibc's
    // malloc in this process (native/runtime.cc: mmap above 64 MB, trim above 512 MB), the peer gets the same
    // thresholds through glibc's environment variables; when the user set their own, both inherit those.
    const { exe, torch } = python();
    const malloc = runtimeInfo().mallocTuning
      ? { MALLOC_MMAP_THRESHOLD_: String(64 << 20), MALLOC_TRIM_THRESHOLD_: String(512 << 20) }
      : {};
    const proc = spawn(exe, [join(here, 'peer', script), ...args, ...(precision === 'bf16' ? ['--bf16'] : [])], {
      env: { ...process.env, ...malloc, OMP_WAIT_POLICY: 'PASSIVE', PYTHONUNBUFFERED: '1' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    peerDescription =
      `reptok's own eager PyTorch re-implementation (bench/peer/${script}), torch ${torch}, ` +
      (precision === 'bf16' ? "bf16 (torch.autocast('cpu', dtype=torch.bfloat16))" : 'fp32');
    let stderr = '';
    proc.stderr.on('data', (d) => (stderr += d));
    proc.on('exit', (code) => {
      if (code) console.error(`peer ${script} exited with ${code}:\n${stderr}`);
    });
    return new Peer(proc);
  }

  /** The peer process's peak resident memory (MB) as of its last answer. */
  peakRssMb: number | undefined;

  async request(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    await settle();
    this.#proc.stdin.write(`${JSON.stringify(cmd)}\n`);
    for (;;) {
      const { value, done } = await this.#lines.next();
      if (done) throw new Error(`the PyTorch peer stopped before answering ${JSON.stringify(cmd)}`);
      if (value.startsWith('{')) {
        const answer = JSON.parse(value);
        this.peakRssMb = answer.peak_rss_mb;
        return answer;
      }
    }
  }

  close(): void {
    this.#proc.stdin.end();
  }
}

/**
 * Waits for the other process's BLAS worker threads to stop spinning (OpenBLAS busy-waits for new work for a
 * while after each call); call before every measurement so neither side is timed against the other's spinners.
 */
export const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 300));

/** Parses `--impl reptok|pytorch|both` and `--key value` options. */
export function benchArgs(argv = process.argv.slice(2)): {
  impl: 'reptok' | 'pytorch' | 'both';
  get(name: string, fallback: string): string;
} {
  const get = (name: string, fallback: string): string => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : fallback;
  };
  const impl = get('impl', 'both');
  if (impl !== 'reptok' && impl !== 'pytorch' && impl !== 'both')
    throw new Error(`--impl must be reptok, pytorch or both, got ${impl}`);
  return { impl, get };
}

/** Median of the timings (seconds) of `iters` calls after `warmup` calls. */
export function timeMedian(fn: () => void, iters: number, warmup = 2): number {
  for (let i = 0; i < warmup; i++) fn();
  const ts: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    fn();
    ts.push((performance.now() - t0) / 1000);
  }
  return median(ts);
}

/**
 * What the PyTorch numbers are: our own re-implementations of the models in eager PyTorch (bench/peer/*.py) on the
 * torch that python3 imports (Debian's python3-torch, 1.13), not the reference code on current PyTorch.
 */
let peerDescription = 'none: no PyTorch peer in this run';

/** One JSON line; every line says what the PyTorch side of the comparison is (`peer`). */
export const emit = (o: Record<string, unknown>): void => console.log(JSON.stringify({ ...o, peer: peerDescription }));

/**
 * One JSON line naming the kernels this machine runs (oneDNN's implementations and ISA, the attention products'
 * path), so that every set of figures says what produced it: `brg:avx512_core_bf16` here, `..._amx` on AMX CPUs.
 */
export function emitKernels(bench: string): void {
  const info = runtimeInfo();
  emit({
    bench,
    threads: info.threads,
    kernels: {
      float32Matmul: info.float32Matmul,
      bf16Matmul: info.bf16.matmul,
      bf16Isa: info.bf16.isa,
      bf16Native: info.bf16.native,
      attentionBf16: info.attentionBf16,
      onednnGemm: info.onednnGemm,
    },
  });
}

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Paired measurement: `pairs` times, one timed run of ours right next to one of the peer's (after both warmed up).
 * This machine's speed drifts by ±30% over seconds; the ratio of neighbouring runs cancels the drift, so the
 * median of the per-pair ratios is the number to report. `ours` and `peer` return seconds for one run.
 */
export async function paired(
  pairs: number,
  ours: (() => number) | null,
  peer: (() => Promise<number>) | null,
): Promise<{ ours: number[]; peer: number[]; ratios: number[] }> {
  const r = { ours: [] as number[], peer: [] as number[], ratios: [] as number[] };
  for (let i = 0; i < pairs; i++) {
    if (ours) {
      await settle();
      r.ours.push(ours());
    }
    if (peer) r.peer.push(await peer());
    if (ours && peer) r.ratios.push(r.ours[i]! / r.peer[i]!);
  }
  return r;
}

/** One timed phase of a benchmark: our function, and the peer's request name. */
export interface Phase {
  name: string;
  ours: () => void;
  run: string;
  iters: number;
}

/** A phase's median times of both sides, and the per-pair ratios with their median. */
export interface PhaseResult {
  reptok?: number;
  pytorch?: number;
  ratio?: number;
  ratios?: number[];
}

/** The smallest and largest of the per-pair ratios, rounded: how far the pairs spread around the median. */
export const spread = (ratios: number[]): [number, number] => [
  Number(Math.min(...ratios).toFixed(3)),
  Number(Math.max(...ratios).toFixed(3)),
];

/**
 * Runs each phase as paired measurements (ours next to the peer's; the first of each warms up) and returns, per
 * phase, the median times of both sides and the median of the per-pair ratios.
 */
export async function pairedPhases(
  peer: Peer | null,
  impl: 'reptok' | 'pytorch' | 'both',
  pairs: number,
  phases: Phase[],
  request: Record<string, unknown>,
): Promise<Record<string, PhaseResult>> {
  const out: Record<string, PhaseResult> = {};
  for (const p of phases) {
    let warm = 1;
    const r = await paired(
      pairs,
      impl === 'pytorch' ? null : () => timeMedian(p.ours, p.iters, warm > 0 ? 2 : 0),
      peer
        ? async () =>
            (await peer.request({ ...request, run: p.run, iters: p.iters, warmup: warm-- > 0 ? 2 : 0 }))
              .seconds as number
        : null,
    );
    out[p.name] = {
      ...(r.ours.length ? { reptok: median(r.ours) } : {}),
      ...(r.peer.length ? { pytorch: median(r.peer) } : {}),
      ...(r.ratios.length ? { ratio: median(r.ratios), ratios: r.ratios } : {}),
    };
  }
  return out;
}

/** A phase measured in either precision: our float32 and bf16 (autocast) functions, the peer's request name. */
export interface PrecisionPhase {
  name: string;
  fp32: () => void;
  bf16: () => void;
  run: string;
  iters: number;
}

/** Keeps one core busy (a spinning Node.js process) until stopped: the `--busy` condition of the benchmarks. */
function busyCore(): () => void {
  const proc = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
  return () => void proc.kill('SIGKILL');
}

/**
 * The tokenizer and generator benchmarks: every phase paired with the PyTorch peer in one precision — float32, or
 * with `--bf16` both sides in bf16 (our autocast; the peer's torch.autocast) and our bf16 paired with our own
 * float32 as well; with `--busy`, all of it again while another process keeps one core busy, and each side's
 * slowdown (busy / quiet). Emits the JSON lines: one per side and condition, then the ratios with `targets`.
 * `--profile` first prints reptok's operator profile of the first phase in that precision (`--top N` operators,
 * `profileTop` by default).
 */
export async function comparePhases(o: {
  bench: string;
  script: string;
  phases: PrecisionPhase[];
  request: Record<string, unknown>;
  targets: { vsPeer: string; vsFp32?: string };
  profileTop: number;
  argv?: string[];
}): Promise<void> {
  const argv = o.argv ?? process.argv.slice(2);
  const args = benchArgs(argv);
  const pairs = Number(args.get('pairs', '5'));
  const precision: Precision = argv.includes('--bf16') ? 'bf16' : 'fp32';
  const conditions = argv.includes('--busy') ? (['quiet', 'busy'] as const) : (['quiet'] as const);
  if (argv.includes('--profile')) {
    const step = o.phases[0]![precision];
    // the first steps fault their working memory in (the tokenizer's fp32 step: 67k and 35k page faults in steps 1
    // and 2, 2-7k from the fourth on), which showed as a 4x slower GELU in a profile of the second step
    for (let i = 0; i < 4; i++) step();
    console.error(formatProfile(profile(step, { shapes: true }).ops, Number(args.get('top', String(o.profileTop)))));
  }
  const threads = runtimeInfo().threads;
  emitKernels(o.bench);
  const peer = args.impl === 'reptok' ? null : Peer.start(o.script, ['--threads', String(threads)], precision);
  const phases = o.phases.map((p) => ({ name: p.name, ours: p[precision], run: p.run, iters: p.iters }));
  const seconds: Record<string, Record<string, { reptok?: number; pytorch?: number }>> = {};
  for (const condition of conditions) {
    const stop = condition === 'busy' ? busyCore() : () => {};
    try {
      const r = await pairedPhases(peer, args.impl, pairs, phases, o.request);
      seconds[condition] = r;
      // peak resident memory of each process so far: ours before the float32 runs of --bf16 below, and only in the
      // first condition (a process's peak only grows: later ones would include the float32 runs)
      const rss =
        condition === 'quiet' ? { reptok: process.resourceUsage().maxRSS / 1024, pytorch: peer?.peakRssMb } : null;
      const line = { bench: o.bench, precision, condition, threads, ...o.request };
      for (const impl of ['reptok', 'pytorch'] as const)
        if (Object.values(r).some((p) => p[impl] !== undefined))
          emit({
            ...line,
            impl,
            ...Object.fromEntries(o.phases.map((p) => [`${p.name}_s`, r[p.name]![impl]])),
            peak_rss_mb: rss?.[impl],
          });
      if (args.impl === 'both')
        emit({
          ...line,
          summary: 'reptok_time/pytorch_time, median of paired runs',
          ...Object.fromEntries(o.phases.map((p) => [p.name, r[p.name]!.ratio])),
          range: Object.fromEntries(o.phases.map((p) => [p.name, spread(r[p.name]!.ratios!)])),
          peak_rss: rss?.pytorch ? rss.reptok / rss.pytorch : undefined,
          pairs,
          target: `${o.targets.vsPeer}; peak_rss <= 1.0`,
        });
      if (precision === 'bf16' && args.impl !== 'pytorch') {
        const ours: Record<string, number> = {};
        const range: Record<string, [number, number]> = {};
        for (const p of o.phases) {
          const bf = await paired(
            pairs,
            () => timeMedian(p.bf16, p.iters, 1),
            async () => timeMedian(p.fp32, p.iters, 1),
          );
          ours[p.name] = median(bf.ratios);
          range[p.name] = spread(bf.ratios);
        }
        emit({
          ...line,
          summary: 'reptok bf16 time / reptok fp32 time, median of paired runs',
          ...ours,
          range,
          pairs,
          target: o.targets.vsFp32,
        });
      }
    } finally {
      stop();
    }
  }
  peer?.close();
  if (seconds.busy)
    for (const impl of ['reptok', 'pytorch'] as const)
      if (seconds.quiet![o.phases[0]!.name]![impl] !== undefined)
        emit({
          bench: o.bench,
          precision,
          impl,
          summary: 'slowdown with one core kept busy by another process (busy time / quiet time)',
          ...Object.fromEntries(
            o.phases.map((p) => [p.name, seconds.busy![p.name]![impl]! / seconds.quiet![p.name]![impl]!]),
          ),
        });
}
