// A small torch.save writer for tests: pickles what our unpickler returns (Maps, arrays, numbers, strings, Buffers,
// Tensors, and inert `PickledObject` / `InertGlobal` records, cycles included) back into a zip archive in
// PyTorch's layout (`archive/data.pkl`, `archive/data/<n>`), so tests can build variants of a checkpoint — and
// hostile pickles, through `PickleCall` (GLOBAL module.name + REDUCE with the given arguments).
import { writeFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';

import { Tensor, type DType } from '../src/index.ts';
import { InertGlobal, PickledObject } from '../src/io/pickle.ts';

/** `module.name(*args)` when Python loads the pickle. */
export class PickleCall {
  constructor(
    readonly global: string,
    readonly args: unknown[],
  ) {}
}

const STORAGE: Partial<Record<DType, string>> = {
  float32: 'FloatStorage',
  float64: 'DoubleStorage',
  float16: 'HalfStorage',
  bfloat16: 'BFloat16Storage',
  int64: 'LongStorage',
  int32: 'IntStorage',
  uint8: 'ByteStorage',
  bool: 'BoolStorage',
};

/** Pickles `obj` (protocol 2); tensors become persistent-id storages returned alongside. */
export function pickleWithStorages(obj: unknown): { pkl: Buffer; storages: Buffer[] } {
  const out: Buffer[] = [];
  const storages: Buffer[] = [];
  const memo = new Map<unknown, number>();
  const w = (...bytes: (number | Buffer | string)[]): void => {
    for (const b of bytes)
      out.push(typeof b === 'number' ? Buffer.from([b]) : typeof b === 'string' ? Buffer.from(b, 'latin1') : b);
  };
  const u32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    return b;
  };
  const put = (o: unknown): void => {
    memo.set(o, memo.size);
    w(0x72, u32(memo.size - 1)); // LONG_BINPUT
  };
  const global = (dotted: string): void => {
    const i = dotted.lastIndexOf('.');
    w(0x63, `${dotted.slice(0, i)}\n${dotted.slice(i + 1)}\n`); // GLOBAL
  };
  const tuple = (items: unknown[]): void => {
    w(0x28); // MARK
    for (const x of items) save(x);
    w(0x74); // TUPLE
  };
  const save = (v: unknown): void => {
    if (v === null || v === undefined) return w(0x4e);
    if (v === true) return w(0x88);
    if (v === false) return w(0x89);
    if (typeof v === 'number' && Number.isInteger(v) && Math.abs(v) < 2 ** 31) {
      const b = Buffer.alloc(4);
      b.writeInt32LE(v);
      return w(0x4a, b); // BININT
    }
    if (typeof v === 'number') {
      const b = Buffer.alloc(8);
      b.writeDoubleBE(v);
      return w(0x47, b); // BINFLOAT
    }
    if (typeof v === 'bigint') {
      const b = Buffer.alloc(8);
      b.writeBigInt64LE(v);
      return w(0x8a, 8, b); // LONG1
    }
    if (typeof v === 'string') {
      const b = Buffer.from(v, 'utf8');
      return w(0x58, u32(b.length), b); // BINUNICODE
    }
    if (Buffer.isBuffer(v)) return w(0x42, u32(v.length), v); // BINBYTES (protocol 3; our reader accepts it)
    if (memo.has(v)) return w(0x6a, u32(memo.get(v)!)); // LONG_BINGET
    if (v instanceof Tensor) {
      const type = STORAGE[v.dtype];
      if (!type) throw new Error(`torch-save-writer: no storage type for ${v.dtype}`);
      const key = String(storages.length);
      storages.push(v.contiguous().bytes());
      const stride = v.shape.map((_, i) => v.shape.slice(i + 1).reduce((a, b) => a * b, 1));
      global('torch._utils._rebuild_tensor_v2');
      w(0x28); // MARK
      tuple(['storage', new InertGlobal(`torch.${type}`), key, 'cpu', v.numel]);
      w(0x51); // BINPERSID
      save(0);
      tuple(v.shape);
      tuple(stride);
      save(false);
      global('collections.OrderedDict');
      w(0x29, 0x52); // EMPTY_TUPLE REDUCE
      w(0x74, 0x52); // TUPLE REDUCE
      return put(v);
    }
    if (v instanceof InertGlobal) return global(v.name);
    if (v instanceof PickleCall) {
      global(v.global);
      tuple(v.args);
      return w(0x52); // REDUCE
    }
    if (v instanceof PickledObject) {
      global(v.className);
      tuple(v.args);
      w(0x81); // NEWOBJ
      put(v);
      if (v.state !== null) {
        save(v.state);
        w(0x62); // BUILD
      }
      return;
    }
    if (Array.isArray(v)) {
      w(0x5d); // EMPTY_LIST
      put(v);
      if (v.length) {
        w(0x28);
        for (const x of v) save(x);
        w(0x65); // APPENDS
      }
      return;
    }
    if (v instanceof Map) {
      w(0x7d); // EMPTY_DICT
      put(v);
      if (v.size) {
        w(0x28);
        for (const [k, x] of v) {
          save(k);
          save(x);
        }
        w(0x75); // SETITEMS
      }
      return;
    }
    throw new Error(`torch-save-writer: cannot pickle ${typeof v}`);
  };
  w(0x80, 2); // PROTO 2
  save(obj);
  w(0x2e); // STOP
  return { pkl: Buffer.concat(out), storages };
}

/** A zip archive of stored (uncompressed) entries. */
export function zipStored(entries: [string, Buffer][]): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const [name, data] of entries) {
    const n = Buffer.from(name);
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(n.length, 26);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(20, 4);
    cd.writeUInt16LE(20, 6);
    cd.writeUInt32LE(crc, 16);
    cd.writeUInt32LE(data.length, 20);
    cd.writeUInt32LE(data.length, 24);
    cd.writeUInt16LE(n.length, 28);
    cd.writeUInt32LE(offset, 42);
    parts.push(local, n, data);
    central.push(cd, n);
    offset += 30 + n.length + data.length;
  }
  const cdBuf = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cdBuf.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, cdBuf, end]);
}

/** Writes `obj` as a torch.save file (what `loadTorchCheckpoint` reads back). */
export function writeTorchSave(path: string, obj: unknown): void {
  const { pkl, storages } = pickleWithStorages(obj);
  writeFileSync(
    path,
    zipStored([
      ['archive/data.pkl', pkl],
      ['archive/byteorder', Buffer.from('little')],
      ...storages.map((b, i): [string, Buffer] => [`archive/data/${i}`, b]),
      ['archive/version', Buffer.from('3\n')],
    ]),
  );
}
