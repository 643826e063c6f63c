// Builders of hostile and damaged files for the hostile-input tests and the fuzzer: a pickle assembler, a stored /
// deflated zip writer (torch.save layout), and a raw safetensors writer that can lie about anything.
import { writeFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';

// ---------------------------------------------------------------------------------------------------------------
// Pickle
// ---------------------------------------------------------------------------------------------------------------

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};

/** Pickle opcodes as bytes, enough to write state dicts by hand (protocol 2). */
export const P = {
  proto: Buffer.from([0x80, 0x02]),
  stop: Buffer.from('.'),
  mark: Buffer.from('('),
  tuple: Buffer.from('t'),
  emptyDict: Buffer.from('}'),
  setitem: Buffer.from('s'),
  reduce: Buffer.from('R'),
  binpersid: Buffer.from('Q'),
  newfalse: Buffer.from([0x89]),
  dup: Buffer.from('2'),
  pop: Buffer.from('0'),
  str: (s: string): Buffer => Buffer.concat([Buffer.from('X'), u32(Buffer.byteLength(s)), Buffer.from(s)]),
  int: (n: number): Buffer => {
    const b = Buffer.alloc(5);
    b[0] = 0x4a;
    b.writeInt32LE(n, 1);
    return b;
  },
  long4: (bytes: Buffer): Buffer => Buffer.concat([Buffer.from([0x8b]), u32(bytes.length), bytes]),
  global: (module: string, name: string): Buffer => Buffer.from(`c${module}\n${name}\n`),
  put: (i: number): Buffer => Buffer.concat([Buffer.from('r'), u32(i)]),
  get: (i: number): Buffer => Buffer.concat([Buffer.from('j'), u32(i)]),
  ints: (ns: number[]): Buffer => Buffer.concat([Buffer.from('('), ...ns.map(P.int), Buffer.from('t')]),
};

/** `_rebuild_tensor_v2(storage '0' (float32, numel), offset, size, stride, False, OrderedDict())` as pickle bytes. */
export function tensorPickle(numel: number, offset: number, size: number[], stride: number[], key = '0'): Buffer {
  return Buffer.concat([
    P.global('torch._utils', '_rebuild_tensor_v2'),
    P.mark,
    P.mark,
    P.str('storage'),
    P.global('torch', 'FloatStorage'),
    P.str(key),
    P.str('cpu'),
    P.int(numel),
    P.tuple,
    P.binpersid,
    P.int(offset),
    P.ints(size),
    P.ints(stride),
    P.newfalse,
    P.global('collections', 'OrderedDict'),
    P.mark,
    P.tuple,
    P.reduce,
    P.tuple,
    P.reduce,
  ]);
}

/** A whole pickle: {name: value-bytes, ...}. */
export function dictPickle(items: [string, Buffer][]): Buffer {
  return Buffer.concat([P.proto, P.emptyDict, ...items.flatMap(([k, v]) => [P.str(k), v, P.setitem]), P.stop]);
}

// ---------------------------------------------------------------------------------------------------------------
// Zip (torch.save layout: archive/data.pkl, archive/data/<key>, stored unless given compressed)
// ---------------------------------------------------------------------------------------------------------------

export interface ZipItem {
  name: string;
  data: Buffer;
  /** Deflated bytes (method 8) instead of storing `data`; `data` then gives the declared size and CRC. */
  deflated?: Buffer;
  /** Declared uncompressed size (default data.length). */
  size?: number;
  /** Local header extra field (default none). */
  localExtra?: Buffer;
  /** An extra-field length for the local header that does not match the bytes written (a damaged header). */
  lieExtraLength?: number;
}

export function zipBytes(items: ZipItem[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const it of items) {
    const name = Buffer.from(it.name);
    const body = it.deflated ?? it.data;
    const crc = crc32(it.data) >>> 0;
    const size = it.size ?? it.data.length;
    const extra = it.localExtra ?? Buffer.alloc(0);
    const h = Buffer.alloc(30);
    h.writeUInt32LE(0x04034b50, 0);
    h.writeUInt16LE(20, 4);
    h.writeUInt16LE(it.deflated ? 8 : 0, 8);
    h.writeUInt32LE(crc, 14);
    h.writeUInt32LE(body.length, 18);
    h.writeUInt32LE(size, 22);
    h.writeUInt16LE(name.length, 26);
    h.writeUInt16LE(it.lieExtraLength ?? extra.length, 28);
    locals.push(h, name, extra, body);
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(20, 4);
    c.writeUInt16LE(20, 6);
    c.writeUInt16LE(it.deflated ? 8 : 0, 10);
    c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(body.length, 20);
    c.writeUInt32LE(size, 24);
    c.writeUInt16LE(name.length, 28);
    c.writeUInt32LE(offset, 42);
    centrals.push(c, name);
    offset += 30 + name.length + extra.length + body.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(items.length, 8);
  end.writeUInt16LE(items.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

/** A torch.save archive: the pickle and float32 storages by key. */
export function pthBytes(pickle: Buffer, storages: Record<string, number[]> = {}, o: Partial<ZipItem> = {}): Buffer {
  return zipBytes([
    { name: 'archive/data.pkl', data: pickle, ...o },
    { name: 'archive/byteorder', data: Buffer.from('little') },
    ...Object.entries(storages).map(([k, v]) => ({
      name: `archive/data/${k}`,
      data: Buffer.from(new Float32Array(v).buffer),
    })),
    { name: 'archive/version', data: Buffer.from('3\n') },
  ]);
}

// ---------------------------------------------------------------------------------------------------------------
// safetensors
// ---------------------------------------------------------------------------------------------------------------

/** A safetensors file from a header (object or raw text/bytes), data bytes, and optionally a lying length. */
export function safetensorsBytes(header: object | string | Buffer, data: Buffer, o: { headerLength?: number } = {}) {
  const h = Buffer.isBuffer(header)
    ? header
    : Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(o.headerLength ?? h.length));
  return Buffer.concat([len, h, data]);
}

export const f32 = (v: number[]): Buffer => Buffer.from(new Float32Array(v).buffer);

export function write(path: string, bytes: Buffer): string {
  writeFileSync(path, bytes);
  return path;
}
