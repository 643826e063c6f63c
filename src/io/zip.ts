// A read-only zip reader over a file descriptor (central directory, zip64, stored and deflated entries). It backs
// the torch.save format, whose entries are stored uncompressed, so tensor data can be read straight from its offset.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';

export interface ZipEntry {
  name: string;
  method: number; // 0 stored, 8 deflated
  compressedSize: number;
  size: number;
  headerOffset: number;
}

export class ZipError extends Error {
  constructor(
    readonly path: string,
    problem: string,
  ) {
    super(`${path}: ${problem}`);
    this.name = 'ZipError';
  }
}

export class ZipFile {
  readonly entries = new Map<string, ZipEntry>();
  #fd: number | null;
  readonly #size: number;

  private constructor(
    readonly path: string,
    fd: number,
  ) {
    this.#fd = fd;
    this.#size = fstatSync(fd).size;
    this.#readCentralDirectory();
  }

  static open(path: string): ZipFile {
    const fd = openSync(path, 'r');
    try {
      return new ZipFile(path, fd);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  get fd(): number {
    if (this.#fd === null) throw new ZipError(this.path, 'file is closed');
    return this.#fd;
  }

  #read(position: number, length: number): Buffer {
    if (position < 0 || position + length > this.#size)
      throw new ZipError(this.path, `truncated: needs bytes ${position}..${position + length} of ${this.#size}`);
    const buf = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, buf, done, length - done, position + done);
      if (n === 0) throw new ZipError(this.path, 'unexpected end of file');
      done += n;
    }
    return buf;
  }

  #readCentralDirectory(): void {
    const tail = Math.min(this.#size, 65535 + 22);
    const end = this.#read(this.#size - tail, tail);
    let eocd = -1;
    for (let i = end.length - 22; i >= 0; i--) {
      if (end.readUInt32LE(i) === 0x06054b50) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw new ZipError(this.path, 'not a zip archive (no end-of-central-directory record)');
    let count = end.readUInt16LE(eocd + 10);
    let cdSize = end.readUInt32LE(eocd + 12);
    let cdOffset = end.readUInt32LE(eocd + 16);
    const locator = eocd - 20;
    if (locator >= 0 && end.readUInt32LE(locator) === 0x07064b50) {
      const z64 = this.#read(Number(end.readBigUInt64LE(locator + 8)), 56);
      if (z64.readUInt32LE(0) !== 0x06064b50)
        throw new ZipError(this.path, 'corrupt zip64 end-of-central-directory record');
      count = Number(z64.readBigUInt64LE(32));
      cdSize = Number(z64.readBigUInt64LE(40));
      cdOffset = Number(z64.readBigUInt64LE(48));
    }
    const cd = this.#read(cdOffset, cdSize);
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (cd.readUInt32LE(p) !== 0x02014b50) throw new ZipError(this.path, `corrupt central directory at entry ${i}`);
      const method = cd.readUInt16LE(p + 10);
      let compressedSize = cd.readUInt32LE(p + 20);
      let size = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      let headerOffset = cd.readUInt32LE(p + 42);
      const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
      // zip64 extra field: the 64-bit values of the fields saturated at 0xFFFFFFFF, in this order
      let e = p + 46 + nameLen;
      const extraEnd = e + extraLen;
      while (e + 4 <= extraEnd) {
        const id = cd.readUInt16LE(e);
        const len = cd.readUInt16LE(e + 2);
        if (id === 0x0001) {
          let q = e + 4;
          if (size === 0xffffffff) ((size = Number(cd.readBigUInt64LE(q))), (q += 8));
          if (compressedSize === 0xffffffff) ((compressedSize = Number(cd.readBigUInt64LE(q))), (q += 8));
          if (headerOffset === 0xffffffff) headerOffset = Number(cd.readBigUInt64LE(q));
        }
        e += 4 + len;
      }
      this.entries.set(name, { name, method, compressedSize, size, headerOffset });
      p = extraEnd + commentLen;
    }
  }

  /** Absolute file offset of an entry's data (after its local header). */
  dataOffset(entry: ZipEntry): number {
    const h = this.#read(entry.headerOffset, 30);
    if (h.readUInt32LE(0) !== 0x04034b50) throw new ZipError(this.path, `corrupt local header for ${entry.name}`);
    return entry.headerOffset + 30 + h.readUInt16LE(26) + h.readUInt16LE(28);
  }

  /** An entry's content (inflated if needed). */
  read(name: string): Buffer {
    const entry = this.entries.get(name);
    if (!entry) throw new ZipError(this.path, `no entry named ${name}`);
    const raw = this.#read(this.dataOffset(entry), entry.compressedSize);
    if (entry.method === 0) return raw;
    if (entry.method === 8) return inflateRawSync(raw);
    throw new ZipError(this.path, `entry ${name} uses compression method ${entry.method}, which is not supported`);
  }

  close(): void {
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
  }
}

/** Whether a file starts like a zip archive. */
export function looksLikeZip(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(4);
    return readSync(fd, b, 0, 4, 0) === 4 && b.readUInt32LE(0) === 0x04034b50;
  } finally {
    closeSync(fd);
  }
}
