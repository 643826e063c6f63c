// Atomic file writes: write a temporary file next to the target, fsync it, rename it over the target, fsync the
// folder. A crash at any point leaves either the old file or the new one, never a torn one.
import { closeSync, fsyncSync, openSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** `.<name>.tmp-<pid>-<ms>`: the temporary file of a write in progress (or of one a kill interrupted). */
const TEMPORARY = /^\..+\.tmp-(\d+)-\d+$/;

export function atomicWrite(path: string, write: (fd: number) => void): void {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${Date.now()}`);
  const fd = openSync(tmp, 'w');
  try {
    write(fd);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true }); // e.g. the target is a folder: leave nothing behind
    throw e;
  }
  const dir = openSync(dirname(path), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

export const atomicWriteText = (path: string, text: string): void =>
  atomicWrite(path, (fd) => void writeSync(fd, text));

/**
 * Deletes the temporary files that writes interrupted by a kill left in `dir` (those of a live process other than
 * this one are left alone: it may still be writing). Returns their names.
 */
export function removeStaleTemporaries(dir: string): string[] {
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'EPERM';
    }
  };
  const stale = readdirSync(dir).filter((f) => {
    const m = TEMPORARY.exec(f);
    return m !== null && (Number(m[1]) === process.pid || !alive(Number(m[1])));
  });
  for (const f of stale) rmSync(join(dir, f), { force: true });
  return stale;
}
