// A read-only zip reader over a file descriptor (central directory, zip64, stored and deflated entries). It backs
// the torch.save format, whose entries are stored uncompressed, so tensor data can be read straight from its offset.
//
// Damaged or hostile archives: every local header must agree with the central directory (name, method, sizes,
// CRC) and its extra field must be well formed, so a shifted local header cannot move an entry's data; entries must
// lie inside the file and apart from each other and the central directory; inflating stops at the declared size.
// The CRC-32 is verified for every entry read through `read()` (the pickle, small and deflated entries); tensor
// data read straight into native memory (`dataOffset()`) is not re-read to check it.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { crc32, inflateRawSync } from 'node:zlib';

import { cannotRead } from './unreadable.ts';

export interface ZipEntry {
  name: string;
  method: number; // 0 stored, 8 deflated
  compressedSize: number;
  size: number;
  crc: number;
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
    if (count > cdSize / 46)
      throw new ZipError(this.path, `corrupt central directory (${count} entries in ${cdSize} bytes)`);
    const cd = this.#read(cdOffset, cdSize);
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cd.length || cd.readUInt32LE(p) !== 0x02014b50)
        throw new ZipError(this.path, `corrupt central directory at entry ${i}`);
      const method = cd.readUInt16LE(p + 10);
      const crc = cd.readUInt32LE(p + 16);
      let compressedSize = cd.readUInt32LE(p + 20);
      let size = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      let headerOffset = cd.readUInt32LE(p + 42);
      if (p + 46 + nameLen + extraLen + commentLen > cd.length)
        throw new ZipError(this.path, `corrupt central directory at entry ${i}`);
      const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
      // zip64 extra field: the 64-bit values of the fields saturated at 0xFFFFFFFF, in this order
      const extra = extraRecords(cd, p + 46 + nameLen, extraLen);
      if (extra === null) throw new ZipError(this.path, `malformed extra field of ${name} in the central directory`);
      const zip64 = extra.get(0x0001);
      if (zip64 !== undefined) {
        let q = zip64;
        const next = (): number => {
          if (q + 8 > p + 46 + nameLen + extraLen) throw new ZipError(this.path, `corrupt zip64 field of ${name}`);
          return ((q += 8), Number(cd.readBigUInt64LE(q - 8)));
        };
        if (size === 0xffffffff) size = next();
        if (compressedSize === 0xffffffff) compressedSize = next();
        if (headerOffset === 0xffffffff) headerOffset = next();
      }
      if (this.entries.has(name)) throw new ZipError(this.path, `two entries named ${name}`);
      if (method === 0 && size !== compressedSize)
        throw new ZipError(this.path, `stored entry ${name} has different compressed and uncompressed sizes`);
      this.entries.set(name, { name, method, compressedSize, size, crc, headerOffset });
      p += 46 + nameLen + extraLen + commentLen;
    }
    this.#checkLocalHeaders(cdOffset);
  }

  // Every local header agrees with the central directory, and entries (header + data) lie before the central
  // directory without overlapping each other.
  #checkLocalHeaders(cdOffset: number): void {
    const byOffset = [...this.entries.values()].sort((a, b) => a.headerOffset - b.headerOffset);
    let end = 0;
    for (const entry of byOffset) {
      if (entry.headerOffset < end)
        throw new ZipError(this.path, `entry ${entry.name} overlaps the entry before it (corrupt archive)`);
      const start = this.#localDataOffset(entry);
      end = start + entry.compressedSize;
      if (end > cdOffset)
        throw new ZipError(this.path, `entry ${entry.name} runs into the central directory (corrupt archive)`);
    }
    for (const entry of byOffset) this.#dataOffsets.set(entry, this.#localDataOffset(entry));
  }

  readonly #dataOffsets = new Map<ZipEntry, number>();

  #localDataOffset(entry: ZipEntry): number {
    const bad = (what: string): never => {
      throw new ZipError(this.path, `the local header of ${entry.name} ${what} (corrupt archive)`);
    };
    const h = this.#read(entry.headerOffset, 30);
    if (h.readUInt32LE(0) !== 0x04034b50) bad('is missing');
    const flags = h.readUInt16LE(6);
    const nameLen = h.readUInt16LE(26);
    const extraLen = h.readUInt16LE(28);
    const rest = this.#read(entry.headerOffset + 30, nameLen + extraLen);
    if (rest.toString('utf8', 0, nameLen) !== entry.name) bad('names another file');
    if (h.readUInt16LE(8) !== entry.method) bad('disagrees with the central directory on the compression method');
    if (!(flags & 0x08)) {
      // sizes and CRC are in the local header unless a data descriptor follows the data (flag bit 3)
      const sizes = [h.readUInt32LE(18), h.readUInt32LE(22)];
      if (h.readUInt32LE(14) !== entry.crc) bad('disagrees with the central directory on the CRC-32');
      if (
        !(sizes[0] === 0xffffffff || sizes[0] === entry.compressedSize) ||
        !(sizes[1] === 0xffffffff || sizes[1] === entry.size)
      )
        bad('disagrees with the central directory on the sizes');
    }
    if (extraRecords(rest, nameLen, extraLen) === null) bad('has a malformed extra field');
    return entry.headerOffset + 30 + nameLen + extraLen;
  }

  /** Absolute file offset of an entry's data (after its local header). */
  dataOffset(entry: ZipEntry): number {
    const offset = this.#dataOffsets.get(entry);
    if (offset === undefined) throw new ZipError(this.path, `no entry named ${entry.name}`);
    return offset;
  }

  /** An entry's content (inflated if needed, never beyond its declared size), its CRC-32 verified. */
  read(name: string): Buffer {
    const entry = this.entries.get(name);
    if (!entry) throw new ZipError(this.path, `no entry named ${name}`);
    const raw = this.#read(this.dataOffset(entry), entry.compressedSize);
    let data: Buffer;
    if (entry.method === 0) data = raw;
    else if (entry.method === 8) {
      try {
        data = inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.size) });
      } catch {
        throw new ZipError(this.path, `entry ${name} does not inflate to its declared ${entry.size} bytes (corrupt)`);
      }
      if (data.length !== entry.size)
        throw new ZipError(this.path, `entry ${name} inflates to ${data.length} bytes, not the declared ${entry.size}`);
    } else
      throw new ZipError(this.path, `entry ${name} uses compression method ${entry.method}, which is not supported`);
    if (crc32(data) >>> 0 !== entry.crc)
      throw new ZipError(this.path, `entry ${name} fails its CRC-32 check (corrupt)`);
    return data;
  }

  close(): void {
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
  }
}

/**
 * The records of a zip extra field (id -> offset of its data), or null when they do not tile the field exactly.
 * (Legal local extra fields vary, e.g. PyTorch's alignment padding, but their records always add up.)
 */
function extraRecords(b: Buffer, start: number, length: number): Map<number, number> | null {
  const records = new Map<number, number>();
  let e = start;
  const end = start + length;
  while (e + 4 <= end) {
    const len = b.readUInt16LE(e + 2);
    if (e + 4 + len > end) return null;
    records.set(b.readUInt16LE(e), e + 4);
    e += 4 + len;
  }
  return e === end ? records : null;
}

/** Whether a file starts like a zip archive. */
export function looksLikeZip(path: string): boolean {
  let fd: number | null = null;
  try {
    fd = openSync(path, 'r');
    const b = Buffer.alloc(4);
    return readSync(fd, b, 0, 4, 0) === 4 && b.readUInt32LE(0) === 0x04034b50;
  } catch (e) {
    throw new ZipError(path, cannotRead(e));
  } finally {
    if (fd !== null) closeSync(fd);
  }
}
