// Reading and writing tar archives (POSIX ustar, with GNU long names and pax headers read and skipped), one entry at
// a time: the reader never holds more than one member in memory, so shards of any size stream in bounded memory.
import { closeSync, openSync, readSync, writeSync } from 'node:fs';

export interface TarEntry {
  name: string;
  /** The member's bytes (read when the entry is yielded). */
  data: Buffer;
}

const BLOCK = 512;

function field(h: Buffer, at: number, len: number): string {
  const s = h.subarray(at, at + len);
  const end = s.indexOf(0);
  return s.subarray(0, end < 0 ? len : end).toString('utf8');
}

function octal(h: Buffer, at: number, len: number, path: string): number {
  const s = field(h, at, len).trim();
  if (!/^[0-7]*$/.test(s)) throw new Error(`${path}: not a tar archive (bad size field '${s}')`);
  return s ? parseInt(s, 8) : 0;
}

/** The regular files of a tar archive, in archive order. */
export function* readTar(path: string): Generator<TarEntry> {
  const fd = openSync(path, 'r');
  try {
    const header = Buffer.alloc(BLOCK);
    let pos = 0;
    let longName: string | null = null;
    for (;;) {
      if (readSync(fd, header, 0, BLOCK, pos) < BLOCK) return; // truncated: what was complete was read
      if (header.every((b) => b === 0)) return; // end-of-archive marker
      const size = octal(header, 124, 12, path);
      const type = String.fromCharCode(header[156]!);
      const prefix = field(header, 345, 155);
      const base = field(header, 0, 100);
      const name = longName ?? (prefix ? `${prefix}/${base}` : base);
      pos += BLOCK;
      const data = Buffer.alloc(size);
      if (size && readSync(fd, data, 0, size, pos) < size) return;
      pos += Math.ceil(size / BLOCK) * BLOCK;
      if (type === 'L') {
        longName = data.toString('utf8').replace(/\0+$/, '');
        continue;
      }
      longName = null;
      if (type === '0' || type === '\0') yield { name, data };
    }
  } finally {
    closeSync(fd);
  }
}

/** Writes `entries` as a ustar archive (names up to 100 bytes). */
export function writeTar(path: string, entries: { name: string; data: Uint8Array }[]): void {
  const fd = openSync(path, 'w');
  try {
    for (const e of entries) {
      if (Buffer.byteLength(e.name) > 100) throw new Error(`tar: member name longer than 100 bytes: ${e.name}`);
      const h = Buffer.alloc(BLOCK);
      h.write(e.name, 0, 'utf8');
      h.write('0000644\0', 100);
      h.write('0000000\0', 108);
      h.write('0000000\0', 116);
      h.write(`${e.data.length.toString(8).padStart(11, '0')}\0`, 124);
      h.write('00000000000\0', 136);
      h.write('        ', 148); // checksum counted as spaces
      h.write('0', 156);
      h.write('ustar\u000000', 257);
      const sum = h.reduce((a, b) => a + b, 0);
      h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
      writeSync(fd, h);
      writeSync(fd, e.data);
      const pad = (BLOCK - (e.data.length % BLOCK)) % BLOCK;
      if (pad) writeSync(fd, Buffer.alloc(pad));
    }
    writeSync(fd, Buffer.alloc(2 * BLOCK));
  } finally {
    closeSync(fd);
  }
}
