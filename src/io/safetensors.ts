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

const TO_DTYPE: Record<string, DType> = {
  F64: 'float64',
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
};
const FROM_DTYPE = Object.fromEntries(Object.entries(TO_DTYPE).map(([k, v]) => [v, k])) as Record<DType, string>;
const MAX_HEADER = 100 * 1024 * 1024;

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
    const fd = openSync(source, 'r');
    try {
      const read = (into: Buffer, position: number): void => void readSync(fd, into, 0, into.length, position);
      const { entries, metadata } = parseHeader(source, fstatSync(fd).size, read);
      return new SafetensorsFile(source, { fd }, entries, metadata);
    } catch (e) {
      closeSync(fd);
      throw e;
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
  let header: Record<string, any>;
  try {
    header = JSON.parse(headerBuf.toString('utf8'));
  } catch (e) {
    return fail(`the header is not valid JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail('the header is not a JSON object');
  const dataStart = 8 + headerLen;
  const dataSize = size - dataStart;
  const metadata: Record<string, string> = {};
  const entries = new Map<string, TensorInfo>();
  for (const [name, v] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (v === null || typeof v !== 'object') fail('__metadata__ is not an object');
      for (const [k, s] of Object.entries(v)) {
        if (typeof s !== 'string') fail(`__metadata__.${k} is not a string`);
        metadata[k] = s as string;
      }
      continue;
    }
    const dtype = TO_DTYPE[v?.dtype];
    if (!dtype)
      fail(
        `tensor '${name}' has dtype ${JSON.stringify(v?.dtype)}, which reptok does not read (supported: ` +
          `${Object.keys(TO_DTYPE).join(', ')})`,
      );
    const shape = v.shape;
    if (!Array.isArray(shape) || !shape.every((s: unknown) => Number.isInteger(s) && (s as number) >= 0))
      fail(`tensor '${name}' has an invalid shape ${JSON.stringify(shape)}`);
    const off = v.data_offsets;
    if (
      !Array.isArray(off) ||
      off.length !== 2 ||
      !off.every((s: unknown) => Number.isInteger(s) && (s as number) >= 0) ||
      off[0] > off[1]
    ) {
      fail(`tensor '${name}' has invalid data_offsets ${JSON.stringify(off)}`);
    }
    const numel = (shape as number[]).reduce((a, b) => a * b, 1);
    const need = numel * itemSize(dtype!);
    if (off[1] - off[0] !== need)
      fail(
        `tensor '${name}' (${v.dtype} [${shape.join(', ')}]) needs ${need} bytes but its data_offsets span ` +
          `${off[1] - off[0]}`,
      );
    if (off[1] > dataSize)
      fail(
        `tensor '${name}' ends at byte ${off[1]} of the data section, which has only ${dataSize} bytes ` +
          '(truncated file?)',
      );
    entries.set(name, { dtype: dtype!, shape, begin: dataStart + off[0], end: dataStart + off[1] });
  }
  return { entries, metadata };
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
    header[name] = { dtype: FROM_DTYPE[t.dtype], shape: t.shape, data_offsets: [offset, offset + n] };
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
