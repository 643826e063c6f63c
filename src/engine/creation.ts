// Factory functions: tensors from shapes, ranges, random distributions and JavaScript data.
import { native } from './native.ts';
import { Tensor, aten, genArg, isSharded, type GeneratorLike, type Shape } from './tensor.ts';
import type { Handle } from './native.ts';
import { dtypeCode, dtypeOfArray, type AnyTypedArray, type DType } from './dtype.ts';
import type { Device } from './device.ts';

export interface TensorOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}
export interface RandomOptions extends TensorOptions {
  generator?: GeneratorLike;
}

// `undefined` keeps the schema's default dtype (randint and randperm default to int64, most factories to float32)
const dt = (o: TensorOptions): number | undefined => (o.dtype === undefined ? undefined : dtypeCode(o.dtype));
const dev = (o: TensorOptions): Device | null => {
  if (o.device === undefined && explicitDevices)
    throw new Error('a tensor was created without a device inside model code: pass { device: <input>.device }');
  return o.device ?? null;
};

// While set (tests: `withExplicitDevices`), every factory call must name its device, so model code that would
// create a CPU tensor next to CUDA inputs (positions, noise, masks, time grids) fails on the CPU already.
let explicitDevices = false;

/** Runs `fn` with every tensor factory required to name its device (a check for device-agnostic model code). */
export function withExplicitDevices<T>(fn: () => T): T {
  const before = explicitDevices;
  explicitDevices = true;
  try {
    return fn();
  } finally {
    explicitDevices = before;
  }
}
/**
 * `withExplicitDevices` across awaits: the check stays on until `fn`'s promise settles. The flag is global, so it
 * also applies to whatever else runs meanwhile (for a test that runs nothing else).
 */
export async function withExplicitDevicesAsync<T>(fn: () => Promise<T>): Promise<T> {
  const before = explicitDevices;
  explicitDevices = true;
  try {
    return await fn();
  } finally {
    explicitDevices = before;
  }
}
const finish = (t: Tensor, o: TensorOptions): Tensor => (o.requiresGrad ? t.requiresGrad_() : t);

// ---------------------------------------------------------------------------------------------------------------
// Constant fills and ranges (float32 unless a dtype is given; arange of integers gives int64, like PyTorch)
// ---------------------------------------------------------------------------------------------------------------

export const zeros = (shape: Shape, o: TensorOptions = {}): Tensor =>
  finish(aten('aten::zeros', shape, dt(o), null, dev(o)), o);
export const ones = (shape: Shape, o: TensorOptions = {}): Tensor =>
  finish(aten('aten::ones', shape, dt(o), null, dev(o)), o);
export const empty = (shape: Shape, o: TensorOptions = {}): Tensor =>
  finish(aten('aten::empty.memory_format', shape, dt(o), null, dev(o)), o);
export const full = (shape: Shape, value: number | boolean, o: TensorOptions = {}): Tensor =>
  finish(
    aten(
      'aten::full',
      shape,
      value,
      dt(o) ?? (typeof value === 'boolean' ? dtypeCode('bool') : dtypeCode('float32')),
      null,
      dev(o),
    ),
    o,
  );

/** arange(end) or arange(start, end, step). */
export function arange(startOrEnd: number, end?: number, step = 1, o: TensorOptions = {}): Tensor {
  const [s, e] = end === undefined ? [0, startOrEnd] : [startOrEnd, end];
  return finish(aten('aten::arange.start_step', s, e, step, dt(o), null, dev(o)), o);
}
export const linspace = (start: number, end: number, steps: number, o: TensorOptions = {}): Tensor =>
  finish(aten('aten::linspace', start, end, steps, dt(o), null, dev(o)), o);
export const eye = (n: number, m = n, o: TensorOptions = {}): Tensor =>
  finish(aten('aten::eye.m', n, m, dt(o), null, dev(o)), o);

export const zerosLike = (t: Tensor, o: TensorOptions = {}): Tensor =>
  zeros(t.shape, { dtype: t.dtype, device: t.device, ...o });
export const onesLike = (t: Tensor, o: TensorOptions = {}): Tensor =>
  ones(t.shape, { dtype: t.dtype, device: t.device, ...o });
export const emptyLike = (t: Tensor, o: TensorOptions = {}): Tensor =>
  empty(t.shape, { dtype: t.dtype, device: t.device, ...o });
export const fullLike = (t: Tensor, value: number, o: TensorOptions = {}): Tensor =>
  full(t.shape, value, { dtype: t.dtype, device: t.device, ...o });

// ---------------------------------------------------------------------------------------------------------------
// Random (the global generator unless `generator` is given)
// ---------------------------------------------------------------------------------------------------------------

// A data-parallel rank's training generator (`batchShard` set) draws for the whole global batch and keeps its own
// consecutive rows, so N processes draw exactly the numbers one process with an N-times larger batch draws, and the
// generator's state stays the same on every rank (and in a single process resuming their checkpoint).
function draw(shape: Shape, o: RandomOptions, op: (shape: Shape, g: Handle | null) => Tensor): Tensor {
  const s = o.generator?.batchShard;
  if (!isSharded(o.generator)) return finish(op(shape, genArg(o.generator)), o);
  const [b, ...rest] = shape;
  if (b === undefined) throw new Error('a data-parallel generator draws batch-major tensors; got a scalar shape');
  const all = op([b * s!.world, ...rest], o.generator!.handle);
  const mine = all.slice(0, s!.rank * b, (s!.rank + 1) * b).clone();
  all.dispose();
  return finish(mine, o);
}

export const randn = (shape: Shape, o: RandomOptions = {}): Tensor =>
  draw(shape, o, (sh, g) => aten('aten::randn.generator', sh, g, dt(o), null, dev(o)));
export const rand = (shape: Shape, o: RandomOptions = {}): Tensor =>
  draw(shape, o, (sh, g) => aten('aten::rand.generator', sh, g, dt(o), null, dev(o)));
/** Integers uniform in [low, high) (int64 by default). */
export const randint = (low: number, high: number, shape: Shape, o: RandomOptions = {}): Tensor =>
  draw(shape, o, (sh, g) => aten('aten::randint.low_generator', low, high, sh, g, dt(o), null, dev(o)));
export const normal = (mean: number, std: number, shape: Shape, o: RandomOptions = {}): Tensor =>
  draw(shape, o, (sh, g) => aten('aten::normal.float_float', mean, std, sh, g, dt(o), null, dev(o)));
/** A random permutation of 0..n-1 (int64). */
export const randperm = (n: number, o: RandomOptions = {}): Tensor =>
  aten('aten::randperm.generator', n, genArg(o.generator), dt(o), null, dev(o));
export const randnLike = (t: Tensor, o: RandomOptions = {}): Tensor =>
  randn(t.shape, { dtype: t.dtype, device: t.device, ...o });
export const randLike = (t: Tensor, o: RandomOptions = {}): Tensor =>
  rand(t.shape, { dtype: t.dtype, device: t.device, ...o });

// ---------------------------------------------------------------------------------------------------------------
// From JavaScript data
// ---------------------------------------------------------------------------------------------------------------

export type NestedArray = number | boolean | readonly NestedArray[];

function inferShape(data: NestedArray): number[] {
  const shape: number[] = [];
  let cur: NestedArray = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = cur[0] as NestedArray;
  }
  return shape;
}

function flatten(data: NestedArray, shape: number[], out: (number | boolean)[], depth = 0): void {
  if (depth === shape.length) {
    if (Array.isArray(data)) throw new TypeError('tensor(): ragged nested array (deeper than its first element)');
    out.push(data as number | boolean);
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[depth]) {
    throw new TypeError(`tensor(): ragged nested array: expected length ${shape[depth]} at depth ${depth}`);
  }
  for (const d of data) flatten(d, shape, out, depth + 1);
}

function typedFor(values: (number | boolean)[], dtype: DType): AnyTypedArray {
  switch (dtype) {
    case 'float64':
      return Float64Array.from(values as number[]);
    case 'int64':
      return BigInt64Array.from(values as number[], (v) => BigInt(Math.trunc(Number(v))));
    case 'int32':
      return Int32Array.from(values as number[]);
    case 'int16':
      return Int16Array.from(values as number[]);
    case 'int8':
      return Int8Array.from(values as number[]);
    case 'uint8':
      return Uint8Array.from(values as number[]);
    case 'bool':
      return Uint8Array.from(values, (v) => (v ? 1 : 0));
    default:
      return Float32Array.from(values as number[]);
  }
}

/**
 * A tensor holding a copy of `data`: a number, a (nested) array, or a TypedArray (whose element type is the
 * default dtype; `shape` reshapes it). Numbers default to float32 (JavaScript cannot tell 1 from 1.0), booleans
 * to bool.
 */
export function tensor(data: NestedArray | AnyTypedArray, o: TensorOptions & { shape?: Shape } = {}): Tensor {
  let bytes: AnyTypedArray;
  let shape: number[];
  let stored: DType;
  if (ArrayBuffer.isView(data)) {
    bytes = data as AnyTypedArray;
    stored = dtypeOfArray(bytes);
    shape = o.shape ? [...o.shape] : [bytes.length];
  } else {
    shape = inferShape(data as NestedArray);
    const flat: (number | boolean)[] = [];
    flatten(data as NestedArray, shape, flat);
    const isBool = flat.length > 0 && typeof flat[0] === 'boolean';
    const want = o.dtype ?? (isBool ? 'bool' : 'float32');
    stored = want === 'float16' || want === 'bfloat16' ? 'float32' : want;
    bytes = typedFor(flat, stored);
    if (o.shape) shape = [...o.shape];
  }
  let t = new Tensor(native.fromBytes(bytes, dtypeCode(stored), shape, dev(o) ?? undefined));
  if (o.dtype !== undefined && o.dtype !== stored) {
    const c = t.to(o.dtype);
    t.dispose();
    t = c;
  }
  return finish(t, o);
}

/** A tensor from raw little-endian bytes (a copy). */
export const fromBytes = (bytes: Uint8Array, dtype: DType, shape: Shape, device?: Device): Tensor =>
  new Tensor(native.fromBytes(bytes, dtypeCode(dtype), [...shape], device));
