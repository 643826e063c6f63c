// A `reptok serve` child process on 127.0.0.1 and a free port, and the peak memory of a process tree: what the web
// demo's tests (test/server/) and its tour (scripts/web-demo-tour.ts) share.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');

export interface Served {
  url: string;
  proc: ChildProcess;
  /** What the server wrote to stderr so far. */
  log: () => string;
  stop: () => Promise<number | null>;
}

/** Starts `reptok serve <args>` on 127.0.0.1 and a free port; resolves once it prints its address. */
export function serve(args: string[]): Promise<Served> {
  const proc = spawn(process.execPath, [join(ROOT, 'bin', 'reptok.mjs'), 'serve', '--port', '0', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stderr!.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`reptok serve did not start within 120 s:\n${err}`)), 120_000);
    proc.on('exit', (code) => reject(new Error(`reptok serve exited (${code}) before serving:\n${err}`)));
    proc.stdout!.on('data', (d) => {
      out += d;
      const url = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(out)?.[1];
      if (!url) return;
      clearTimeout(timer);
      resolve({
        url,
        proc,
        log: () => err,
        stop: () =>
          new Promise((done) => {
            if (proc.exitCode !== null) return done(proc.exitCode);
            proc.once('exit', (code) => done(code));
            proc.kill('SIGTERM');
          }),
      });
    });
  });
}

/** A process and all its descendants (Linux /proc). */
export function processTree(pid: number): number[] {
  const file = `/proc/${pid}/task/${pid}/children`;
  const children = existsSync(file) ? readFileSync(file, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number) : [];
  return [pid, ...children.flatMap(processTree)];
}

/** Peak resident memory (VmHWM) of each process in the tree, in bytes. */
export function peakRss(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const p of processTree(pid)) {
    const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1];
    if (kb) out.set(p, Number(kb) * 1024);
  }
  return out;
}
