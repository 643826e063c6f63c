// What the web demo's tests share: tiny model folders with sample images, a `reptok serve` child process on
// 127.0.0.1 and a free port, test images made in memory, and the peak memory of a process tree.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';

import { ROOT } from '../helpers.ts';
import { TINY_CLASSES, saveTinyModels } from '../tiny-models.ts';

/** A w×h test picture: a coloured shape (i picks shape and colour) on white, encoded as `format`. */
export function testImage(i: number, w = 40, h = 32, format: 'png' | 'jpeg' | 'webp' = 'png'): Promise<Buffer> {
  const px = Buffer.alloc(w * h * 3, 255);
  const colour = [
    [220, 40, 40],
    [40, 90, 220],
    [40, 170, 60],
  ][i % 3]!;
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const [u, v] = [(x + 0.5) / w - 0.5, (y + 0.5) / h - 0.5];
      const inside =
        i % 3 === 0
          ? u * u + v * v < 0.1
          : i % 3 === 1
            ? Math.max(Math.abs(u), Math.abs(v)) < 0.3
            : v > -0.3 && Math.abs(u) < (v + 0.3) / 1.5;
      if (inside) px.set(colour, (y * w + x) * 3);
    }
  return sharp(px, { raw: { width: w, height: h, channels: 3 } })
    .toFormat(format)
    .toBuffer();
}

/** Tiny models of every kind in one folder, with samples/<class>/*.png for the neighbour search. */
export async function tinyModelFolder(): Promise<string> {
  const { dir } = saveTinyModels();
  for (const [c, name] of TINY_CLASSES.entries()) {
    mkdirSync(join(dir, 'samples', name), { recursive: true });
    for (let k = 0; k < 2; k++)
      await sharp(await testImage(c, 16 + 8 * k, 16)).toFile(join(dir, 'samples', name, `${k}.png`));
  }
  return dir;
}

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
