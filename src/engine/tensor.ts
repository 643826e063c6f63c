// Tensor: a handle on a libtorch tensor, with PyTorch semantics (broadcasting, dtype promotion, views, in-place
// ops, autograd) under TypeScript names. Every method is one ATen operator called through the dispatcher, so
// results and gradients are PyTorch's own kernels.
//
// Ownership: a method returns a new Tensor that the caller owns (dispose it, or create it inside `tidy`); in-place
// methods (trailing underscore) return `this`.
import { inspect } from 'node:util';

import { native, type Handle } from './native.ts';
import { dtypeCode, dtypeFromCode, viewBytes, type AnyTypedArray, type DType, type TypedArrayFor } from './dtype.ts';
import type { Device } from './device.ts';
import { track } from './scope.ts';
import { formatTensor } from './format.ts';

export type TensorLike = Tensor | number | boolean;
export type Shape = readonly number[];
/** Named tensors as a module tree or a checkpoint file holds them (PyTorch's state dict). */
export type StateDict = Map<string, Tensor>;

// ---------------------------------------------------------------------------------------------------------------
// Operator calls
// ---------------------------------------------------------------------------------------------------------------

const opIds = new Map<string, number>();

function opId(name: string): number {
  let id = opIds.get(name);
  if (id === undefined) {
    const dot = name.indexOf('.', name.indexOf('::') + 2);
    id = dot < 0 ? native.findOp(name, '') : native.findOp(name.slice(0, dot), name.slice(dot + 1));
    opIds.set(name, id);
  }
  return id;
}

/** True when this libtorch has the operator (e.g. `aten::_upsample_bicubic2d_aa.vec`). */
export function hasOp(name: string): boolean {
  try {
    opId(name);
    return true;
  } catch {
    return false;
  }
}

function toArg(a: unknown): unknown {
  if (a instanceof Tensor) return a.handle;
  if (Array.isArray(a)) return a.map(toArg);
  return a;
}

function fromResult(r: unknown): any {
  if (Array.isArray(r)) return r.map(fromResult);
  if (r !== null && typeof r === 'object') return new Tensor(r as Handle);
  return r;
}

/**
 * Calls any ATen operator by its schema name, e.g. `aten('aten::add.Tensor', a, b, 2)`. Arguments follow the
 * schema's order; trailing ones may be omitted (schema defaults) and `undefined` also means "default". Numbers
 * where a tensor is expected become wrapped scalars, as in Python. Returns Tensor, Tensor[], numbers or arrays.
 */
export function aten(name: string, ...args: unknown[]): any {
  return fromResult(native.call(opId(name), ...args.map(toArg)));
}

/** Like `aten` for operators whose result is not needed (in-place ops): skips wrapping the returned alias. */
export function atenVoid(name: string, ...args: unknown[]): void {
  native.callVoid(opId(name), ...args.map(toArg));
}

/** The schema of an ATen operator, as libtorch prints it. */
export const atenSchema = (name: string): string => native.opSchema(opId(name));

// Shapes and dim lists are accepted both spread out and as one array: x.reshape(2, 3) and x.reshape([2, 3]).
function dimsOf(args: readonly (number | Shape)[]): number[] {
  return args.length === 1 && Array.isArray(args[0]) ? [...(args[0] as Shape)] : (args as number[]);
}

// ---------------------------------------------------------------------------------------------------------------
// Tensor
// ---------------------------------------------------------------------------------------------------------------

export class Tensor {
  /** @internal the native handle; replaced in place by Module.to()/loading so references stay valid. */
  handle: Handle;
  /** @internal set by keep(): no tidy scope disposes this tensor. */
  kept?: boolean;
  #shape: number[] | undefined;
  #dtype: DType | undefined;

  /** @internal tensors are created by operations and factory functions, not with `new`. */
  constructor(handle: Handle) {
    this.handle = handle;
    track(this);
  }

  /** @internal swap the underlying tensor (parameter replacement); the old one is released, `other` hands its
   * native tensor over to `this` (no scope may dispose it through `other` any more). */
  _replace(other: Tensor): void {
    native.dispose(this.handle);
    other.kept = true;
    this.handle = other.handle;
    this.#shape = undefined;
    this.#dtype = undefined;
  }

  // ---- metadata ------------------------------------------------------------------------------------------------

  get shape(): number[] {
    return (this.#shape ??= native.shape(this.handle));
  }
  get dtype(): DType {
    return (this.#dtype ??= dtypeFromCode(native.dtype(this.handle)));
  }
  get device(): Device {
    return native.device(this.handle);
  }
  get ndim(): number {
    return this.shape.length;
  }
  dim(): number {
    return this.shape.length;
  }
  /** Size of one dimension (negative dims count from the end), or the whole shape. */
  size(): number[];
  size(dim: number): number;
  size(dim?: number): number | number[] {
    if (dim === undefined) return this.shape;
    const s = this.shape;
    const d = dim < 0 ? dim + s.length : dim;
    if (d < 0 || d >= s.length)
      throw new RangeError(`size(${dim}): dimension out of range for a tensor of shape [${s.join(', ')}]`);
    return s[d]!;
  }
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  get strides(): number[] {
    return native.strides(this.handle);
  }
  isContiguous(): boolean {
    return native.isContiguous(this.handle);
  }
  /** Whether both tensors view the same memory. */
  sameStorage(other: Tensor): boolean {
    return native.sameStorage(this.handle, other.handle);
  }

  // ---- memory --------------------------------------------------------------------------------------------------

  /** Frees the native memory now. Using the tensor afterwards is an error. Safe to call twice. */
  dispose(): void {
    native.dispose(this.handle);
  }
  get isDisposed(): boolean {
    return native.isDisposed(this.handle);
  }
  [Symbol.dispose](): void {
    this.dispose();
  }

  // ---- data in and out -----------------------------------------------------------------------------------------

  /** The value of a one-element tensor. */
  item(): number;
  item<T extends number | boolean>(): T;
  item(): number | boolean {
    return native.item(this.handle);
  }
  /** A copy of the elements in row-major order (float16/bfloat16 are returned as float32). */
  data<D extends DType = 'float32'>(): TypedArrayFor<D> {
    const t = this.dtype === 'float16' || this.dtype === 'bfloat16' ? this.to('float32') : this;
    const out = viewBytes(native.toBytes(t.handle), t.dtype);
    if (t !== this) t.dispose();
    return out as TypedArrayFor<D>;
  }
  /** Raw bytes of the elements in row-major order. */
  bytes(): Buffer {
    return native.toBytes(this.handle);
  }
  /** Nested JS arrays (int64 as numbers, bool as booleans), like PyTorch's tolist(). */
  toArray(): any {
    const flat: AnyTypedArray = this.data();
    const conv =
      this.dtype === 'bool' ? (v: any) => v !== 0 : this.dtype === 'int64' ? (v: any) => Number(v) : (v: any) => v;
    const shape = this.shape;
    if (shape.length === 0) return conv(flat[0]);
    let pos = 0;
    const build = (d: number): any[] => {
      const out = new Array(shape[d]);
      for (let i = 0; i < shape[d]!; i++) out[i] = d === shape.length - 1 ? conv(flat[pos++]) : build(d + 1);
      return out;
    };
    return build(0);
  }
  toString(): string {
    return formatTensor(this);
  }
  [inspect.custom](): string {
    return this.isDisposed ? 'Tensor(disposed)' : formatTensor(this);
  }

  // ---- dtype and device ----------------------------------------------------------------------------------------

  /** Converts dtype and/or device; returns an alias of `this` when nothing changes (like PyTorch). */
  to(target: DType | Device | { dtype?: DType; device?: Device; copy?: boolean }): Tensor {
    const t = typeof target === 'string' ? (isDTypeName(target) ? { dtype: target } : { device: target }) : target;
    if (t.device !== undefined) {
      return aten('aten::to.device', this, t.device, dtypeCode(t.dtype ?? this.dtype), false, t.copy ?? false);
    }
    return aten('aten::to.dtype', this, dtypeCode(t.dtype ?? this.dtype), false, t.copy ?? false);
  }
  float(): Tensor {
    return this.to('float32');
  }
  double(): Tensor {
    return this.to('float64');
  }
  half(): Tensor {
    return this.to('float16');
  }
  bfloat16(): Tensor {
    return this.to('bfloat16');
  }
  long(): Tensor {
    return this.to('int64');
  }
  int(): Tensor {
    return this.to('int32');
  }
  bool(): Tensor {
    return this.to('bool');
  }
  cpu(): Tensor {
    return this.to({ device: 'cpu' });
  }
  cuda(index = 0): Tensor {
    return this.to({ device: `cuda:${index}` });
  }
  clone(): Tensor {
    return aten('aten::clone', this);
  }
  contiguous(): Tensor {
    return aten('aten::contiguous', this);
  }

  // ---- autograd ------------------------------------------------------------------------------------------------

  get requiresGrad(): boolean {
    return native.requiresGrad(this.handle);
  }
  /** Marks a leaf tensor as requiring gradients (in place). */
  requiresGrad_(flag = true): this {
    native.setRequiresGrad(this.handle, flag);
    return this;
  }
  /** The accumulated gradient (a new handle on it), or null. */
  get grad(): Tensor | null {
    const g = native.getGrad(this.handle);
    return g === null ? null : new Tensor(g);
  }
  set grad(g: Tensor | null) {
    native.setGrad(this.handle, g === null ? null : g.handle);
  }
  /** Whether `.grad` holds a gradient (without creating a handle on it). */
  get hasGrad(): boolean {
    return native.hasGrad(this.handle);
  }
  get isLeaf(): boolean {
    return native.isLeaf(this.handle);
  }
  /** Name of the autograd node that produced this tensor (e.g. "AddBackward0"), or null for leaves. */
  get gradFn(): string | null {
    return native.gradFnName(this.handle);
  }
  /** Accumulates d(this)/d(leaves) into the leaves' `.grad`. A non-scalar tensor needs `gradient`. */
  backward(gradient?: Tensor, opts: { retainGraph?: boolean; createGraph?: boolean } = {}): void {
    native.backward(
      [this.handle],
      gradient ? [gradient.handle] : null,
      opts.retainGraph ?? opts.createGraph ?? false,
      opts.createGraph ?? false,
    );
  }
  detach(): Tensor {
    return aten('aten::detach', this);
  }
  /** Keeps `.grad` on a non-leaf tensor after backward. */
  retainGrad(): this {
    atenVoid('aten::retain_grad', this);
    return this;
  }

  // ---- shape and views -----------------------------------------------------------------------------------------

  reshape(...shape: (number | Shape)[]): Tensor {
    return aten('aten::reshape', this, dimsOf(shape));
  }
  view(...shape: (number | Shape)[]): Tensor {
    return aten('aten::view', this, dimsOf(shape));
  }
  permute(...dims: (number | Shape)[]): Tensor {
    return aten('aten::permute', this, dimsOf(dims));
  }
  transpose(dim0: number, dim1: number): Tensor {
    return aten('aten::transpose.int', this, dim0, dim1);
  }
  movedim(source: number, destination: number): Tensor {
    return aten('aten::movedim.int', this, source, destination);
  }
  /** Transpose of the last two dimensions. */
  get mT(): Tensor {
    return this.transpose(-2, -1);
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return aten('aten::flatten.using_ints', this, startDim, endDim);
  }
  unflatten(dim: number, sizes: Shape): Tensor {
    return aten('aten::unflatten.int', this, dim, sizes);
  }
  squeeze(dim?: number): Tensor {
    return dim === undefined ? aten('aten::squeeze', this) : aten('aten::squeeze.dim', this, dim);
  }
  unsqueeze(dim: number): Tensor {
    return aten('aten::unsqueeze', this, dim);
  }
  expand(...sizes: (number | Shape)[]): Tensor {
    return aten('aten::expand', this, dimsOf(sizes));
  }
  expandAs(other: Tensor): Tensor {
    return this.expand(other.shape);
  }
  repeat(...sizes: (number | Shape)[]): Tensor {
    return aten('aten::repeat', this, dimsOf(sizes));
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return aten('aten::narrow', this, dim, start, length);
  }
  select(dim: number, index: number): Tensor {
    return aten('aten::select.int', this, dim, index);
  }
  /** Python's x[..., start:end:step] along `dim` (a view). */
  slice(dim: number, start?: number | null, end?: number | null, step = 1): Tensor {
    return aten('aten::slice.Tensor', this, dim, start ?? null, end ?? null, step);
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return aten('aten::index_select', this, dim, index);
  }
  /** Advanced indexing x[i0, i1, ...] with index tensors (null skips a dimension). */
  index(indices: (Tensor | null)[]): Tensor {
    return aten('aten::index.Tensor', this, indices);
  }
  indexPut_(indices: (Tensor | null)[], values: Tensor, accumulate = false): this {
    atenVoid('aten::index_put_', this, indices, values, accumulate);
    return this;
  }
  gather(dim: number, index: Tensor): Tensor {
    return aten('aten::gather', this, dim, index);
  }
  scatter(dim: number, index: Tensor, src: Tensor | number): Tensor {
    return typeof src === 'number'
      ? aten('aten::scatter.value', this, dim, index, src)
      : aten('aten::scatter.src', this, dim, index, src);
  }
  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor {
    return aten('aten::scatter_add', this, dim, index, src);
  }
  maskedFill(mask: Tensor, value: TensorLike): Tensor {
    return value instanceof Tensor
      ? aten('aten::masked_fill.Tensor', this, mask, value)
      : aten('aten::masked_fill.Scalar', this, mask, value);
  }
  maskedFill_(mask: Tensor, value: number): this {
    atenVoid('aten::masked_fill_.Scalar', this, mask, value);
    return this;
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return aten('aten::chunk', this, chunks, dim);
  }
  /** Splits into pieces of `size` (or of the listed sizes) along `dim`. */
  split(size: number | Shape, dim = 0): Tensor[] {
    return typeof size === 'number'
      ? aten('aten::split.Tensor', this, size, dim)
      : aten('aten::split_with_sizes', this, size, dim);
  }
  unbind(dim = 0): Tensor[] {
    return aten('aten::unbind.int', this, dim);
  }
  roll(shifts: number | Shape, dims: number | Shape = []): Tensor {
    return aten('aten::roll', this, shifts, dims);
  }
  flip(...dims: (number | Shape)[]): Tensor {
    return aten('aten::flip', this, dimsOf(dims));
  }
  tril(diagonal = 0): Tensor {
    return aten('aten::tril', this, diagonal);
  }
  triu(diagonal = 0): Tensor {
    return aten('aten::triu', this, diagonal);
  }

  // ---- elementwise math ----------------------------------------------------------------------------------------

  add(other: TensorLike, alpha = 1): Tensor {
    return aten('aten::add.Tensor', this, other, alpha);
  }
  sub(other: TensorLike, alpha = 1): Tensor {
    return aten('aten::sub.Tensor', this, other, alpha);
  }
  mul(other: TensorLike): Tensor {
    return aten('aten::mul.Tensor', this, other);
  }
  /** True division; `roundingMode` 'trunc' or 'floor' gives integer-style division. */
  div(other: TensorLike, roundingMode?: 'trunc' | 'floor'): Tensor {
    return roundingMode
      ? aten('aten::div.Tensor_mode', this, other, roundingMode)
      : aten('aten::div.Tensor', this, other);
  }
  /** other - this (like Python's `2 - x`). */
  rsub(other: TensorLike): Tensor {
    return aten('aten::rsub.Tensor', this, other);
  }
  pow(exponent: TensorLike): Tensor {
    return exponent instanceof Tensor
      ? aten('aten::pow.Tensor_Tensor', this, exponent)
      : aten('aten::pow.Tensor_Scalar', this, exponent);
  }
  remainder(other: TensorLike): Tensor {
    return aten('aten::remainder.Tensor', this, other);
  }
  fmod(other: TensorLike): Tensor {
    return aten('aten::fmod.Tensor', this, other);
  }
  maximum(other: Tensor): Tensor {
    return aten('aten::maximum', this, other);
  }
  minimum(other: Tensor): Tensor {
    return aten('aten::minimum', this, other);
  }
  atan2(other: Tensor): Tensor {
    return aten('aten::atan2', this, other);
  }
  addcmul(t1: Tensor, t2: Tensor, value = 1): Tensor {
    return aten('aten::addcmul', this, t1, t2, value);
  }
  addcdiv(t1: Tensor, t2: Tensor, value = 1): Tensor {
    return aten('aten::addcdiv', this, t1, t2, value);
  }
  /** this + weight * (end - this). */
  lerp(end: Tensor, weight: TensorLike): Tensor {
    return weight instanceof Tensor
      ? aten('aten::lerp.Tensor', this, end, weight)
      : aten('aten::lerp.Scalar', this, end, weight);
  }
  clamp(min?: number | null, max?: number | null): Tensor {
    return aten('aten::clamp', this, min ?? null, max ?? null);
  }
  clampMin(min: number): Tensor {
    return aten('aten::clamp_min', this, min);
  }
  clampMax(max: number): Tensor {
    return aten('aten::clamp_max', this, max);
  }

  neg(): Tensor {
    return aten('aten::neg', this);
  }
  abs(): Tensor {
    return aten('aten::abs', this);
  }
  sign(): Tensor {
    return aten('aten::sign', this);
  }
  sqrt(): Tensor {
    return aten('aten::sqrt', this);
  }
  rsqrt(): Tensor {
    return aten('aten::rsqrt', this);
  }
  square(): Tensor {
    return aten('aten::square', this);
  }
  reciprocal(): Tensor {
    return aten('aten::reciprocal', this);
  }
  exp(): Tensor {
    return aten('aten::exp', this);
  }
  expm1(): Tensor {
    return aten('aten::expm1', this);
  }
  log(): Tensor {
    return aten('aten::log', this);
  }
  log1p(): Tensor {
    return aten('aten::log1p', this);
  }
  log2(): Tensor {
    return aten('aten::log2', this);
  }
  sin(): Tensor {
    return aten('aten::sin', this);
  }
  cos(): Tensor {
    return aten('aten::cos', this);
  }
  tan(): Tensor {
    return aten('aten::tan', this);
  }
  tanh(): Tensor {
    return aten('aten::tanh', this);
  }
  sigmoid(): Tensor {
    return aten('aten::sigmoid', this);
  }
  relu(): Tensor {
    return aten('aten::relu', this);
  }
  erf(): Tensor {
    return aten('aten::erf', this);
  }
  erfinv(): Tensor {
    return aten('aten::erfinv', this);
  }
  floor(): Tensor {
    return aten('aten::floor', this);
  }
  ceil(): Tensor {
    return aten('aten::ceil', this);
  }
  round(): Tensor {
    return aten('aten::round', this);
  }
  trunc(): Tensor {
    return aten('aten::trunc', this);
  }
  isnan(): Tensor {
    return aten('aten::isnan', this);
  }
  isfinite(): Tensor {
    return aten('aten::isfinite', this);
  }

  // comparisons and logic (bool results)
  eq(other: TensorLike): Tensor {
    return aten('aten::eq.Tensor', this, other);
  }
  ne(other: TensorLike): Tensor {
    return aten('aten::ne.Tensor', this, other);
  }
  lt(other: TensorLike): Tensor {
    return aten('aten::lt.Tensor', this, other);
  }
  le(other: TensorLike): Tensor {
    return aten('aten::le.Tensor', this, other);
  }
  gt(other: TensorLike): Tensor {
    return aten('aten::gt.Tensor', this, other);
  }
  ge(other: TensorLike): Tensor {
    return aten('aten::ge.Tensor', this, other);
  }
  logicalNot(): Tensor {
    return aten('aten::logical_not', this);
  }
  logicalAnd(other: Tensor): Tensor {
    return aten('aten::logical_and', this, other);
  }
  logicalOr(other: Tensor): Tensor {
    return aten('aten::logical_or', this, other);
  }
  logicalXor(other: Tensor): Tensor {
    return aten('aten::logical_xor', this, other);
  }
  /** Elementwise equality of shapes and values within tolerances (NaN never matches). */
  allclose(other: Tensor, rtol = 1e-5, atol = 1e-8): boolean {
    return aten('aten::allclose', this, other, rtol, atol, false);
  }
  equal(other: Tensor): boolean {
    return aten('aten::equal', this, other);
  }

  // ---- in place ------------------------------------------------------------------------------------------------

  add_(other: TensorLike, alpha = 1): this {
    atenVoid('aten::add_.Tensor', this, other, alpha);
    return this;
  }
  sub_(other: TensorLike, alpha = 1): this {
    atenVoid('aten::sub_.Tensor', this, other, alpha);
    return this;
  }
  mul_(other: TensorLike): this {
    atenVoid('aten::mul_.Tensor', this, other);
    return this;
  }
  div_(other: TensorLike): this {
    atenVoid('aten::div_.Tensor', this, other);
    return this;
  }
  addcmul_(t1: Tensor, t2: Tensor, value = 1): this {
    atenVoid('aten::addcmul_', this, t1, t2, value);
    return this;
  }
  addcdiv_(t1: Tensor, t2: Tensor, value = 1): this {
    atenVoid('aten::addcdiv_', this, t1, t2, value);
    return this;
  }
  lerp_(end: Tensor, weight: number): this {
    atenVoid('aten::lerp_.Scalar', this, end, weight);
    return this;
  }
  clamp_(min?: number | null, max?: number | null): this {
    atenVoid('aten::clamp_', this, min ?? null, max ?? null);
    return this;
  }
  neg_(): this {
    atenVoid('aten::neg_', this);
    return this;
  }
  sqrt_(): this {
    atenVoid('aten::sqrt_', this);
    return this;
  }
  exp_(): this {
    atenVoid('aten::exp_', this);
    return this;
  }
  erfinv_(): this {
    atenVoid('aten::erfinv_', this);
    return this;
  }
  copy_(src: Tensor): this {
    atenVoid('aten::copy_', this, src, false);
    return this;
  }
  fill_(value: TensorLike): this {
    atenVoid('aten::fill_.Tensor', this, value);
    return this;
  }
  zero_(): this {
    atenVoid('aten::zero_', this);
    return this;
  }
  /** Fills with U(low, high) samples (from `generator`, else the global one). */
  uniform_(low = 0, high = 1, generator?: GeneratorLike): this {
    atenVoid('aten::uniform_', this, low, high, genArg(generator));
    return this;
  }
  normal_(mean = 0, std = 1, generator?: GeneratorLike): this {
    atenVoid('aten::normal_', this, mean, std, genArg(generator));
    return this;
  }
  bernoulli_(p: number, generator?: GeneratorLike): this {
    atenVoid('aten::bernoulli_.float', this, p, genArg(generator));
    return this;
  }

  // ---- reductions ----------------------------------------------------------------------------------------------

  sum(dim?: number | Shape, keepdim = false): Tensor {
    return dim === undefined ? aten('aten::sum', this) : aten('aten::sum.dim_IntList', this, dim, keepdim);
  }
  mean(dim?: number | Shape, keepdim = false): Tensor {
    return dim === undefined ? aten('aten::mean', this) : aten('aten::mean.dim', this, dim, keepdim);
  }
  prod(dim?: number, keepdim = false): Tensor {
    return dim === undefined ? aten('aten::prod', this) : aten('aten::prod.dim_int', this, dim, keepdim);
  }
  /** Variance with Bessel's correction by default (`correction: 0` for the population variance). */
  var(dim?: number | Shape | null, opts: { correction?: number; keepdim?: boolean } = {}): Tensor {
    return aten('aten::var.correction', this, dim ?? null, opts.correction ?? 1, opts.keepdim ?? false);
  }
  std(dim?: number | Shape | null, opts: { correction?: number; keepdim?: boolean } = {}): Tensor {
    return aten('aten::std.correction', this, dim ?? null, opts.correction ?? 1, opts.keepdim ?? false);
  }
  /** Maximum of all elements, or {values, indices} along `dim`. */
  max(): Tensor;
  max(dim: number, keepdim?: boolean): { values: Tensor; indices: Tensor };
  max(dim?: number, keepdim = false): Tensor | { values: Tensor; indices: Tensor } {
    if (dim === undefined) return aten('aten::max', this);
    const [values, indices] = aten('aten::max.dim', this, dim, keepdim);
    return { values, indices };
  }
  min(): Tensor;
  min(dim: number, keepdim?: boolean): { values: Tensor; indices: Tensor };
  min(dim?: number, keepdim = false): Tensor | { values: Tensor; indices: Tensor } {
    if (dim === undefined) return aten('aten::min', this);
    const [values, indices] = aten('aten::min.dim', this, dim, keepdim);
    return { values, indices };
  }
  /** Minimum and maximum in one pass, of all elements or along `dim`. */
  aminmax(dim?: number, keepdim = false): { min: Tensor; max: Tensor } {
    const [min, max] = aten('aten::aminmax', this, dim ?? null, keepdim);
    return { min, max };
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return aten('aten::argmax', this, dim ?? null, keepdim);
  }
  argmin(dim?: number, keepdim = false): Tensor {
    return aten('aten::argmin', this, dim ?? null, keepdim);
  }
  /** Vector p-norm over `dim` (all elements by default), like torch.linalg.vector_norm. */
  norm(p = 2, dim?: number | Shape, keepdim = false): Tensor {
    return aten('aten::linalg_vector_norm', this, p, dim ?? null, keepdim);
  }
  logsumexp(dim: number | Shape, keepdim = false): Tensor {
    return aten('aten::logsumexp', this, dim, keepdim);
  }
  cumsum(dim: number): Tensor {
    return aten('aten::cumsum', this, dim);
  }
  /** True where every element (over `dim`, or of the whole tensor) is true. */
  all(dim?: number, keepdim = false): Tensor {
    return dim === undefined ? aten('aten::all', this) : aten('aten::all.dim', this, dim, keepdim);
  }
  /** True where any element (over `dim`, or of the whole tensor) is true. */
  any(dim?: number, keepdim = false): Tensor {
    return dim === undefined ? aten('aten::any', this) : aten('aten::any.dim', this, dim, keepdim);
  }
  /** Sorted values and their indices along `dim`. */
  sort(dim = -1, descending = false): { values: Tensor; indices: Tensor } {
    const [values, indices] = aten('aten::sort', this, dim, descending);
    return { values, indices };
  }
  topk(k: number, dim = -1, largest = true): { values: Tensor; indices: Tensor } {
    const [values, indices] = aten('aten::topk', this, k, dim, largest, true);
    return { values, indices };
  }

  // ---- linear algebra ------------------------------------------------------------------------------------------

  matmul(other: Tensor): Tensor {
    return aten('aten::matmul', this, other);
  }
  mm(other: Tensor): Tensor {
    return aten('aten::mm', this, other);
  }
  bmm(other: Tensor): Tensor {
    return aten('aten::bmm', this, other);
  }
  softmax(dim: number): Tensor {
    return aten('aten::softmax.int', this, dim);
  }
  logSoftmax(dim: number): Tensor {
    return aten('aten::log_softmax.int', this, dim);
  }
}

function isDTypeName(s: string): s is DType {
  return (
    s === 'float32' ||
    s === 'float64' ||
    s === 'float16' ||
    s === 'bfloat16' ||
    s === 'int64' ||
    s === 'int32' ||
    s === 'int16' ||
    s === 'int8' ||
    s === 'uint8' ||
    s === 'bool'
  );
}

/** Anything with a native generator handle (see random.ts). */
export interface GeneratorLike {
  readonly handle: Handle;
}
export const genArg = (g?: GeneratorLike | null): Handle | null => (g ? g.handle : null);
