// Module: a tree of parameters, buffers and sub-modules with PyTorch-compatible state-dict names.
//
// Children are registered under the reference implementation's names (`ls1`, `mlp.fc1`, `blocks.3`) whatever the
// TypeScript field is called, so `stateDict()` keys equal the keys of the reference checkpoints and those load
// without renaming.
import {
  Tensor,
  dropWeightCopies,
  keep,
  noGrad,
  packForInference,
  type Device,
  type DType,
  type StateDict,
} from '../engine/index.ts';

/** Thrown by loadStateDict when keys or shapes disagree; lists every problem at once. */
export class StateDictError extends Error {
  constructor(
    readonly missing: string[],
    readonly unexpected: string[],
    readonly mismatched: { key: string; expected: number[]; got: number[] }[],
    context: string,
  ) {
    const parts: string[] = [];
    const list = (keys: string[]): string =>
      keys.length > 12 ? `${keys.slice(0, 12).join(', ')}, ... (${keys.length} in all)` : keys.join(', ');
    if (missing.length) parts.push(`missing keys: ${list(missing)}`);
    if (unexpected.length) parts.push(`unexpected keys: ${list(unexpected)}`);
    if (mismatched.length)
      parts.push(
        `shape mismatches: ${mismatched
          .slice(0, 12)
          .map((m) => `${m.key} expects [${m.expected.join(', ')}] but got [${m.got.join(', ')}]`)
          .join('; ')}`,
      );
    super(
      `${context}: the state dict does not fit the model:\n  ${parts.join('\n  ')}\n` +
        'Check that the checkpoint and the model configuration match (preset, sizes), or load with ' +
        '{ strict: false } to skip missing and unexpected keys.',
    );
    this.name = 'StateDictError';
  }
}

export abstract class Module {
  training = true;
  readonly #params = new Map<string, Tensor>();
  readonly #buffers = new Map<string, { t: Tensor; persistent: boolean }>();
  readonly #children = new Map<string, Module>();

  // ---- registration (call from constructors) -------------------------------------------------------------------

  /** Registers a trainable parameter under `name`; it requires gradients and outlives every tidy scope. */
  protected param(name: string, t: Tensor): Tensor {
    this.#checkName(name);
    keep(t);
    if (!t.requiresGrad) t.requiresGrad_(true);
    this.#params.set(name, t);
    return t;
  }

  /** Registers a buffer (state without gradients). Non-persistent buffers stay out of the state dict. */
  protected buffer(name: string, t: Tensor, persistent = true): Tensor {
    this.#checkName(name);
    keep(t);
    this.#buffers.set(name, { t, persistent });
    return t;
  }

  /** Registers a sub-module under `name` (its keys get the prefix `name.`). */
  protected module<M extends Module>(name: string, m: M): M {
    this.#checkName(name);
    this.#children.set(name, m);
    return m;
  }

  #checkName(name: string): void {
    if (!name || name.includes('.'))
      throw new TypeError(`invalid child name '${name}': names are non-empty and contain no dots`);
    if (this.#params.has(name) || this.#buffers.has(name) || this.#children.has(name))
      throw new TypeError(`'${name}' is already registered on ${this.constructor.name}`);
  }

  // ---- traversal -----------------------------------------------------------------------------------------------

  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [n, m] of this.#children) yield* m.namedModules(prefix ? `${prefix}.${n}` : n);
  }

  *namedChildren(): Generator<[string, Module]> {
    yield* this.#children;
  }

  *namedParameters(prefix = ''): Generator<[string, Tensor]> {
    for (const [path, m] of this.namedModules(prefix))
      for (const [n, p] of m.#params) yield [path ? `${path}.${n}` : n, p];
  }

  parameters(): Tensor[] {
    return [...this.namedParameters()].map(([, p]) => p);
  }

  *namedBuffers(prefix = '', persistentOnly = false): Generator<[string, Tensor]> {
    for (const [path, m] of this.namedModules(prefix)) {
      for (const [n, b] of m.#buffers) if (b.persistent || !persistentOnly) yield [path ? `${path}.${n}` : n, b.t];
    }
  }

  /** The sub-module at a dotted path ('' is this module). */
  getSubmodule(path: string): Module {
    let m: Module = this;
    for (const part of path ? path.split('.') : []) {
      const c = m.#children.get(part);
      if (!c) throw new Error(`${this.constructor.name} has no sub-module '${path}'`);
      m = c;
    }
    return m;
  }

  numParameters(opts: { trainableOnly?: boolean } = {}): number {
    return this.parameters().reduce((n, p) => n + (!opts.trainableOnly || p.requiresGrad ? p.numel : 0), 0);
  }

  // ---- state dicts ---------------------------------------------------------------------------------------------

  /** Parameters and persistent buffers by dotted name (live tensors, not copies). */
  stateDict(): StateDict {
    const sd: StateDict = new Map();
    for (const [path, m] of this.namedModules()) {
      const key = (n: string): string => (path ? `${path}.${n}` : n);
      for (const [n, p] of m.#params) sd.set(key(n), p);
      for (const [n, b] of m.#buffers) if (b.persistent) sd.set(key(n), b.t);
    }
    return sd;
  }

  /**
   * Copies values into the parameters and buffers (converting dtype and device). With `strict` (default) every key
   * must match; shape mismatches are always errors. Returns the keys that were missing and unexpected.
   */
  loadStateDict(
    sd: StateDict | Record<string, Tensor>,
    opts: { strict?: boolean; context?: string } = {},
  ): { missing: string[]; unexpected: string[] } {
    const source = sd instanceof Map ? sd : new Map(Object.entries(sd));
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !source.has(k));
    const unexpected = [...source.keys()].filter((k) => !own.has(k));
    const mismatched: { key: string; expected: number[]; got: number[] }[] = [];
    for (const [k, t] of own) {
      const v = source.get(k);
      if (v && (v.shape.length !== t.shape.length || v.shape.some((s, i) => s !== t.shape[i])))
        mismatched.push({ key: k, expected: t.shape, got: v.shape });
    }
    const strict = opts.strict ?? true;
    if (mismatched.length || (strict && (missing.length || unexpected.length))) {
      throw new StateDictError(
        strict ? missing : [],
        strict ? unexpected : [],
        mismatched,
        opts.context ?? this.constructor.name,
      );
    }
    noGrad(() => {
      for (const [k, t] of own) {
        const v = source.get(k);
        if (v) t.copy_(v);
      }
    });
    return { missing, unexpected };
  }

  // ---- modes, devices, gradients -------------------------------------------------------------------------------

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /**
   * Moves parameters and buffers to a device and/or converts floating-point ones to a dtype, in place: the Tensor
   * objects stay the same (so optimizers and references keep working), their storage is replaced.
   */
  to(target: { device?: Device; dtype?: DType }): this {
    noGrad(() => {
      for (const [, m] of this.namedModules()) {
        const convert = (t: Tensor, isParam: boolean): void => {
          const floating =
            t.dtype === 'float32' || t.dtype === 'float64' || t.dtype === 'float16' || t.dtype === 'bfloat16';
          const dtype = floating && target.dtype ? target.dtype : t.dtype;
          const device = target.device ?? t.device;
          if (dtype === t.dtype && device === t.device) return;
          const requires = t.requiresGrad;
          const moved = t.to({ dtype, device, copy: true });
          t._replace(moved);
          if (isParam) t.requiresGrad_(requires);
        };
        for (const p of m.#params.values()) convert(p, true);
        for (const b of m.#buffers.values()) convert(b.t, false);
      }
    });
    return this;
  }

  /**
   * Runs this sub-tree's float32 linear layers on packed weights in forward-only calls (the engine's
   * packForInference: faster inference for a second copy of those weights); `false` drops the copies. Call it after
   * `to()`, which replaces the storage. Returns how many weights are marked.
   */
  packForInference(enabled = true): number {
    return packForInference(this.parameters(), enabled);
  }

  /** Turns gradient tracking of every parameter in this sub-tree on or off (freezing). */
  requiresGrad_(flag = true): this {
    for (const p of this.parameters()) p.requiresGrad_(flag);
    return this;
  }

  /** Drops accumulated gradients. */
  zeroGrad(): void {
    for (const p of this.parameters()) if (p.requiresGrad) p.grad = null;
  }

  /**
   * Frees all parameters and buffers now, and the engine's copies of the weights (bf16, packed). The module cannot
   * be used afterwards.
   */
  dispose(): void {
    dropWeightCopies(this.parameters());
    for (const [, m] of this.namedModules()) {
      for (const p of m.#params.values()) p.dispose();
      for (const b of m.#buffers.values()) b.t.dispose();
    }
  }
}

/** The device a module's weights live on (that of its first parameter or buffer). */
export function moduleDevice(m: Module): Device {
  const first = m.parameters()[0] ?? [...m.namedBuffers()][0]?.[1];
  if (!first) throw new Error(`${m.constructor.name} has no parameters or buffers, so it has no device`);
  return first.device;
}
