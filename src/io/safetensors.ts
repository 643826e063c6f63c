// safetensors (https://github.com/huggingface/safetensors): an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets}, __metadata__: {string: string}}, then the raw little-endian data.
//
// Reading is lazy: the header is parsed and validated first, then each tensor is read straight from the file into
// its own native memory (no JavaScript-side copy), so a multi-GB checkpoint never exists twice in memory. A file
// already in memory (a Buffer, e.g. fetched by a browser or a server) reads the same way, tensor by tensor.
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';

import { Tensor, empty, fromBytes, type Device, type DType } from '../engine/index.ts';
import { itemSize } from '../engine/dtype.ts';
import { native } from '../engine/native.ts';
import { atomicWrite } from './atomic.ts';
import { cannotRead } from './unreadable.ts';

const TO_DTYPE = new Map<string, DType>([
  ['F64', 'float64'],
  ['F32', 'float32'],
  ['F16', 'float16'],
  ['BF16', 'bfloat16'],
  ['I64', 'int64'],
  ['I32', 'int32'],
  ['I16', 'int16'],
  ['I8', 'int8'],
  ['U8', 'uint8'],
  ['BOOL', 'bool'],
]);
const FROM_DTYPE = new Map([...TO_DTYPE].map(([k, v]) => [v, k]));
/**
 * Header limit. The reference implementation allows 100 MB, but real headers take ~150 bytes per tensor (a few MB for
 * the largest shards), and a 100 MB header of tiny entries costs gigabytes and tens of seconds to index: 16 MiB
 * (~100,000 tensors) bounds a hostile header to a few hundred MB and a few seconds.
 */
const MAX_HEADER = 16 * 1024 * 1024;
/** `__metadata__` holds a few strings (format, config...); a file with more keys is corrupt or hostile. */
const MAX_METADATA_KEYS = 65_536;
/** Tensors have at most this many dimensions (as in libtorch). */
const MAX_RANK = 64;

export class SafetensorsError extends Error {
  constructor(
    readonly path: string,
    problem: string,
  ) {
    super(`${path}: ${problem}`);
    this.name = 'SafetensorsError';
  }
}

export interface TensorInfo {
  dtype: DType;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
}

/** Where the bytes are: an open file, or a buffer in memory. */
type Bytes = { fd: number } | { buffer: Uint8Array };

/** A file's path or its bytes. */
export type SafetensorsSource = string | Uint8Array;

export class SafetensorsFile {
  readonly metadata: Record<string, string>;
  readonly entries: Map<string, TensorInfo>;
  #bytes: Bytes | null;

  private constructor(
    /** The file's path, or '(buffer)' for bytes in memory (named in error messages). */
    readonly path: string,
    bytes: Bytes,
    entries: Map<string, TensorInfo>,
    metadata: Record<string, string>,
  ) {
    this.#bytes = bytes;
    this.entries = entries;
    this.metadata = metadata;
  }

  /** Opens a file (or a file's bytes) and validates its header (every entry's dtype, shape and byte range). */
  static open(source: SafetensorsSource): SafetensorsFile {
    if (typeof source !== 'string') {
      const buffer = source;
      const read = (into: Buffer, position: number): void =>
        void into.set(buffer.subarray(position, position + into.length));
      const { entries, metadata } = parseHeader('(buffer)', buffer.length, read);
      return new SafetensorsFile('(buffer)', { buffer }, entries, metadata);
    }
    let fd: number | null = null;
    try {
      fd = openSync(source, 'r');
      const file = fd;
      const read = (into: Buffer, position: number): void => {
        if (readSync(file, into, 0, into.length, position) !== into.length)
          throw new SafetensorsError(source, 'not a valid safetensors file: the header could not be read in full');
      };
      const { entries, metadata } = parseHeader(source, fstatSync(fd).size, read);
      return new SafetensorsFile(source, { fd }, entries, metadata);
    } catch (e) {
      if (fd !== null) closeSync(fd);
      if (e instanceof SafetensorsError) throw e;
      throw new SafetensorsError(source, cannotRead(e));
    }
  }

  keys(): string[] {
    return [...this.entries.keys()];
  }

  info(name: string): TensorInfo {
    const e = this.entries.get(name);
    if (!e) throw new SafetensorsError(this.path, `no tensor named '${name}'`);
    return e;
  }

  /** Reads one tensor (optionally converted to a dtype and/or moved to a device). */
  get(name: string, o: { dtype?: DType; device?: Device } = {}): Tensor {
    const bytes = this.#bytes;
    if (bytes === null) throw new SafetensorsError(this.path, 'file is closed');
    const e = this.info(name);
    let t: Tensor;
    if ('buffer' in bytes) {
      t = fromBytes(bytes.buffer.subarray(e.begin, e.end), e.dtype, e.shape);
    } else {
      t = empty(e.shape, { dtype: e.dtype });
      try {
        native.readInto(t.handle, bytes.fd, e.begin);
      } catch (err) {
        t.dispose();
        throw new SafetensorsError(this.path, `reading '${name}': ${(err as Error).message}`);
      }
    }
    if ((o.dtype === undefined || o.dtype === e.dtype) && (o.device === undefined || o.device === 'cpu')) return t;
    const c = t.to({ dtype: o.dtype ?? e.dtype, device: o.device ?? 'cpu' });
    t.dispose();
    return c;
  }

  close(): void {
    if (this.#bytes && 'fd' in this.#bytes) closeSync(this.#bytes.fd);
    this.#bytes = null;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Header parsing. The header is untrusted: it is decoded as strict UTF-8 and read by a small parser that accepts
// only the format's shape (a flat object of tensor entries and one `__metadata__` object of strings) and builds
// nothing deeper, so a header of nested brackets or millions of keys is refused at once instead of costing
// gigabytes in JSON.parse. Then, as in the reference implementation, the tensors' byte ranges must tile the data
// section exactly: contiguous from 0, no overlaps, no gaps, no trailing bytes.
// ---------------------------------------------------------------------------------------------------------------

interface RawEntry {
  dtype?: unknown;
  shape?: unknown;
  data_offsets?: unknown;
}

function parseHeader(
  path: string,
  size: number,
  read: (into: Buffer, position: number) => void,
): { entries: Map<string, TensorInfo>; metadata: Record<string, string> } {
  const fail = (problem: string): never => {
    throw new SafetensorsError(path, `not a valid safetensors file: ${problem}`);
  };
  if (size < 8) fail(`the file has ${size} bytes, fewer than the 8-byte header length`);
  const lenBuf = Buffer.alloc(8);
  read(lenBuf, 0);
  const headerLen = Number(lenBuf.readBigUInt64LE(0));
  if (headerLen > MAX_HEADER)
    fail(`the header claims ${headerLen} bytes (limit ${MAX_HEADER}); the file is corrupt or not safetensors`);
  if (8 + headerLen > size)
    fail(`the header claims ${headerLen} bytes but the file has only ${size - 8} after the length (truncated?)`);
  const headerBuf = Buffer.alloc(headerLen);
  read(headerBuf, 8);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBuf);
  } catch {
    return fail('the header is not valid UTF-8');
  }
  const { tensors, metadata } = parseHeaderText(text, fail);

  const dataStart = 8 + headerLen;
  const dataSize = size - dataStart;
  const entries = new Map<string, TensorInfo>();
  for (const [name, v] of tensors) {
    for (const field of ['dtype', 'shape', 'data_offsets'] as const)
      if (v[field] === undefined) fail(`tensor '${name}' has no '${field}'`);
    const dtype = typeof v.dtype === 'string' ? TO_DTYPE.get(v.dtype) : undefined;
    if (!dtype)
      fail(
        `tensor '${name}' has dtype ${JSON.stringify(v.dtype)}, which reptok does not read (supported: ` +
          `${[...TO_DTYPE.keys()].join(', ')})`,
      );
    const shape = v.shape;
    if (!Array.isArray(shape) || !shape.every((s) => Number.isSafeInteger(s) && (s as number) >= 0))
      fail(`tensor '${name}' has an invalid shape ${JSON.stringify(shape)}`);
    const off = v.data_offsets;
    if (
      !Array.isArray(off) ||
      off.length !== 2 ||
      !off.every((s) => Number.isSafeInteger(s) && (s as number) >= 0) ||
      off[0] > off[1]
    )
      fail(`tensor '${name}' has invalid data_offsets ${JSON.stringify(off)}`);
    const [begin, end] = off as [number, number];
    const need = (shape as number[]).reduce((a, b) => a * b, 1) * itemSize(dtype!);
    if (end - begin !== need)
      fail(
        `tensor '${name}' (${v.dtype} [${(shape as number[]).join(', ')}]) needs ${need} bytes but its data_offsets ` +
          `span ${end - begin}`,
      );
    if (end > dataSize)
      fail(
        `tensor '${name}' ends at byte ${end} of the data section, which has only ${dataSize} bytes ` +
          '(truncated file?)',
      );
    entries.set(name, { dtype: dtype!, shape: shape as number[], begin: dataStart + begin, end: dataStart + end });
  }
  // the byte ranges, in file order, must follow each other from 0 to the end of the file
  let at = dataStart;
  for (const [name, e] of [...entries].sort(([, a], [, b]) => a.begin - b.begin || a.end - b.end)) {
    if (e.begin !== at)
      fail(
        e.begin < at
          ? `tensor '${name}' overlaps the tensor before it (data_offsets ${e.begin - dataStart}..${e.end - dataStart})`
          : `a gap of ${e.begin - at} bytes before tensor '${name}' (data_offsets must be contiguous)`,
      );
    at = e.end;
  }
  if (at !== size)
    fail(
      `${size - at} bytes after the last tensor (the data section has ${dataSize} bytes, the tensors cover ` +
        `${at - dataStart}); a wrong header length or a damaged file`,
    );
  return { entries, metadata };
}

/** The header's JSON text -> tensor entries (in order) and metadata, refusing anything but the format's shape. */
function parseHeaderText(
  s: string,
  fail: (problem: string) => never,
): { tensors: Map<string, RawEntry>; metadata: Record<string, string> } {
  let i = 0;
  const ws = (): void => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === '\n' || s[i] === '\r')) i++;
  };
  const expect = (c: string, what: string): void => {
    ws();
    if (s[i] !== c) fail(`the header is not valid JSON of the safetensors shape: expected ${what} at character ${i}`);
    i++;
  };
  const peek = (): string | undefined => (ws(), s[i]);
  const string = (): string => {
    expect('"', 'a string');
    const start = i;
    let escaped = false;
    for (; i < s.length && s[i] !== '"'; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x20) fail(`a control character inside a string at character ${i}`);
      if (c === 0x5c) ((escaped = true), i++);
    }
    if (i >= s.length) fail('an unterminated string in the header');
    i++;
    const raw = s.slice(start, i - 1);
    if (!escaped) return raw;
    try {
      return JSON.parse(`"${raw}"`) as string;
    } catch {
      return fail(`an invalid escape in the string at character ${start}`);
    }
  };
  const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  const number = (): number => {
    ws();
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(s);
    if (!m) fail(`expected a number at character ${i}`);
    i += m![0].length;
    return Number(m![0]);
  };
  // an object's members, each read by `member` (keys must be unique)
  const object = (member: (key: string) => void, seen: Set<string> | null): void => {
    expect('{', 'an object');
    if (peek() === '}') return void i++;
    for (;;) {
      const key = string();
      if (seen?.has(key)) fail(`the key '${key}' appears twice`);
      seen?.add(key);
      expect(':', "':'");
      member(key);
      if (peek() === ',') i++;
      else return expect('}', "',' or '}'");
    }
  };
  const numberList = (): number[] => {
    const out: number[] = [];
    expect('[', 'a list');
    if (peek() === ']') return (i++, out);
    for (;;) {
      if (out.length >= MAX_RANK) fail(`a list of more than ${MAX_RANK} numbers`);
      out.push(number());
      if (peek() === ',') i++;
      else return (expect(']', "',' or ']'"), out);
    }
  };
  // a value of an unknown field inside a tensor entry: a scalar (ignored, as the reference implementation does)
  const scalar = (): void => {
    const c = peek();
    if (c === '"') return void string();
    for (const word of ['true', 'false', 'null']) if (s.startsWith(word, i)) return void (i += word.length);
    number();
  };

  const tensors = new Map<string, RawEntry>();
  const metadata: Record<string, string> = Object.create(null);
  let metadataKeys = 0;
  object((name) => {
    if (name === '__metadata__') {
      if (peek() !== '{') fail('__metadata__ is not an object of strings');
      object((k) => {
        if (++metadataKeys > MAX_METADATA_KEYS) fail(`__metadata__ has more than ${MAX_METADATA_KEYS} keys`);
        if (peek() !== '"') fail(`__metadata__.${k} is not a string`);
        metadata[k] = string();
      }, new Set());
      return;
    }
    if (peek() !== '{') fail(`the entry of tensor '${name}' is not an object`);
    const e: RawEntry = {};
    object((field) => {
      // (no Set per entry: known fields are checked for repeats here, unknown ones are skipped)
      if ((field === 'dtype' || field === 'shape' || field === 'data_offsets') && e[field] !== undefined)
        fail(`tensor '${name}' has two '${field}' fields`);
      if (field === 'dtype') e.dtype = peek() === '"' ? string() : (scalar(), null);
      else if (field === 'shape') e.shape = numberList();
      else if (field === 'data_offsets') e.data_offsets = numberList();
      else scalar();
    }, null);
    tensors.set(name, e);
  }, new Set());
  ws();
  if (i !== s.length) fail(`unexpected text after the header's JSON object at character ${i}`);
  return { tensors, metadata: { ...metadata } };
}

/** Reads only the metadata (the header; no tensor data). */
export function readSafetensorsMetadata(source: SafetensorsSource): Record<string, string> {
  const file = SafetensorsFile.open(source);
  file.close();
  return file.metadata;
}

/** Reads every tensor (or those `filter` accepts) and the metadata. */
export function loadSafetensors(
  source: SafetensorsSource,
  o: { dtype?: DType; device?: Device; filter?: (name: string) => boolean } = {},
): { tensors: Map<string, Tensor>; metadata: Record<string, string> } {
  const file = SafetensorsFile.open(source);
  const tensors = new Map<string, Tensor>();
  try {
    for (const name of file.keys()) {
      if (o.filter && !o.filter(name)) continue;
      const info = file.info(name);
      const floating = info.dtype.startsWith('float') || info.dtype === 'bfloat16';
      tensors.set(name, file.get(name, { dtype: floating ? o.dtype : undefined, device: o.device }));
    }
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  } finally {
    file.close();
  }
  return { tensors, metadata: file.metadata };
}

/**
 * Writes tensors (in iteration order) and string metadata, atomically: the target is replaced only once the new
 * file is complete and on disk.
 */
export function saveSafetensors(
  path: string,
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  metadata: Record<string, string> = {},
): void {
  const list = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of list) {
    if (name === '__metadata__')
      throw new SafetensorsError(path, "'__metadata__' is reserved and cannot name a tensor");
    const n = t.numel * itemSize(t.dtype);
    header[name] = { dtype: FROM_DTYPE.get(t.dtype), shape: t.shape, data_offsets: [offset, offset + n] };
    offset += n;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8; // keeps the data section 8-byte aligned, as the format recommends
  json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  atomicWrite(path, (fd) => {
    writeSync(fd, len, 0, 8, 0);
    writeSync(fd, json, 0, json.length, 8);
    let pos = 8 + json.length;
    for (const [, t] of list) pos += native.writeFrom(t.handle, fd, pos);
  });
}
