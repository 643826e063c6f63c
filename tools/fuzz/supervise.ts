// Runs untrusted work in a child process that cannot take the caller down: a V8 heap cap, a resident-memory cap
// (VmHWM, the kernel's high-water mark, polled, so a brief spike is not missed), and a wall-clock limit. Used by
// the hostile-input tests and the fuzzer; a crash, a hang or a memory bomb is a result here, not the end of the run.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface Limits {
  /** V8 heap cap (--max-old-space-size), MB. */
  heapMb: number;
  /** Resident memory (native allocations included) above which the child is killed, MB. */
  rssMb: number;
  /** Wall-clock limit, ms. */
  timeoutMs: number;
}

export const DEFAULT_LIMITS: Limits = { heapMb: 512, rssMb: 1024, timeoutMs: 30_000 };

/** Peak resident memory of a live process so far, MB (0 when it is gone). */
export function peakRssMb(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** Starts `node --import tsx <script> ...args` under `limits`, with an IPC channel. */
export function spawnLimited(script: string, args: string[], limits: Limits): ChildProcess {
  return spawn(process.execPath, [`--max-old-space-size=${limits.heapMb}`, '--import', 'tsx', script, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: { ...process.env, OMP_NUM_THREADS: '1' },
  });
}

/** Watches a child's memory: kills it past `rssMb`; returns a stop function giving the peak seen. */
export function watchMemory(child: ChildProcess, rssMb: number, onBomb: () => void): () => number {
  let peak = 0;
  const poll = setInterval(() => {
    peak = Math.max(peak, peakRssMb(child.pid!));
    if (peak > rssMb) {
      onBomb();
      child.kill('SIGKILL');
    }
  }, 20);
  return () => (clearInterval(poll), peak);
}

export interface Outcome {
  /** 'ok': the child reported a result; the others say how it ended without one. */
  kind: 'ok' | 'crash' | 'hang' | 'memory';
  /** The child's report (kind 'ok'). */
  report?: unknown;
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  peakRssMb: number;
}

/** Runs `script` once: it must send one IPC message (its report) and exit. */
export function runLimited(script: string, args: string[], limits: Limits = DEFAULT_LIMITS): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawnLimited(script, args, limits);
    let stderr = '';
    let report: unknown;
    let reported = false;
    let verdict: Outcome['kind'] | null = null;
    child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-20_000)));
    child.stdout!.resume();
    child.on('message', (m) => ((report = m), (reported = true)));
    const stop = watchMemory(child, limits.rssMb, () => (verdict ??= 'memory'));
    const timer = setTimeout(() => {
      verdict ??= 'hang';
      child.kill('SIGKILL');
    }, limits.timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const peak = stop();
      const kind = verdict ?? (reported && code === 0 ? 'ok' : 'crash');
      resolve({ kind, report, code, signal, stderr, peakRssMb: Math.round(peak) });
    });
  });
}

/**
 * A served child (tools/fuzz/case.ts --serve) that runs cases one after another, so a batch of cases pays for one
 * process start. A case that crashes, hangs or passes the memory cap ends the child; the next case gets a new one.
 */
export class CaseRunner {
  #child: ChildProcess | null = null;
  #pending: ((m: any) => void) | null = null;
  #exit: ((info: { code: number | null; signal: NodeJS.Signals | null }) => void) | null = null;
  #stderr = '';
  #id = 0;
  /** Child processes started (1 + restarts after crashes, hangs and memory kills). */
  starts = 0;

  constructor(readonly limits: Limits = DEFAULT_LIMITS) {}

  #start(): ChildProcess {
    const child = spawnLimited(join(ROOT, 'tools', 'fuzz', 'case.ts'), ['--serve'], this.limits);
    this.starts++;
    this.#stderr = '';
    child.stderr!.on('data', (d) => (this.#stderr = (this.#stderr + d).slice(-20_000)));
    child.stdout!.resume();
    child.on('message', (m) => this.#pending?.(m));
    child.on('exit', (code, signal) => {
      this.#child = null;
      this.#exit?.({ code, signal });
    });
    return child;
  }

  /** Runs one case; the outcome says how it ended (a report, or a crash / hang / memory kill of the child). */
  run(kind: string, arg: string, options: Record<string, unknown> = {}): Promise<Outcome> {
    const child = (this.#child ??= this.#start());
    const id = ++this.#id;
    return new Promise((resolve) => {
      let verdict: Outcome['kind'] | null = null;
      const stop = watchMemory(child, this.limits.rssMb, () => (verdict ??= 'memory'));
      const timer = setTimeout(() => {
        verdict ??= 'hang';
        child.kill('SIGKILL');
      }, this.limits.timeoutMs);
      const finish = (o: Omit<Outcome, 'peakRssMb' | 'stderr'>): void => {
        clearTimeout(timer);
        this.#pending = this.#exit = null;
        const report = o.report as { maxRssMb?: number } | undefined;
        resolve({ ...o, stderr: this.#stderr, peakRssMb: Math.round(Math.max(stop(), report?.maxRssMb ?? 0)) });
      };
      this.#pending = (m) => {
        if (m.id === id && !m.started) finish({ kind: 'ok', report: m, code: null, signal: null });
      };
      this.#exit = ({ code, signal }) => finish({ kind: verdict ?? 'crash', code, signal });
      child.send({ id, kind, arg, options });
    });
  }

  close(): void {
    this.#child?.kill('SIGKILL');
    this.#child = null;
  }
}
