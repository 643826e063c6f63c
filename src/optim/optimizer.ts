// The optimizer base: parameter groups with per-group options, and state dicts that round-trip through
// safetensors checkpoints (tensors by name, everything else as JSON-able metadata).
import { Tensor, keep } from '../engine/index.ts';

export interface ParamGroup<O> {
  params: Tensor[];
  options: O;
}

/** Parameters, or groups of parameters with options that override the optimizer's defaults. */
export type ParamsInput<O> = Iterable<Tensor> | { params: Iterable<Tensor>; [k: string]: unknown }[];

export interface OptimizerState {
  /** Per-parameter state tensors, keyed `<paramIndex>.<name>` (index over all groups in order, like PyTorch). */
  tensors: Map<string, Tensor>;
  /** Group options and per-parameter scalars. */
  meta: { groups: Record<string, unknown>[]; scalars: Record<string, Record<string, number>> };
}

export abstract class Optimizer<O extends { lr: number }, S extends Record<string, Tensor | number | undefined>> {
  readonly groups: ParamGroup<O>[];
  protected readonly state = new Map<Tensor, S>();

  constructor(params: ParamsInput<O>, defaults: O) {
    const list = [...(params as Iterable<unknown>)];
    const grouped = list.length > 0 && !(list[0] instanceof Tensor);
    const raw = grouped ? (list as { params: Iterable<Tensor> }[]) : [{ params: list as Tensor[] }];
    this.groups = raw.map(({ params: ps, ...overrides }) => ({
      params: [...ps],
      options: { ...defaults, ...(overrides as Partial<O>) },
    }));
    const seen = new Set<Tensor>();
    for (const g of this.groups) {
      for (const p of g.params) {
        if (seen.has(p)) throw new Error('a parameter appears in more than one parameter group');
        if (!p.requiresGrad)
          throw new Error(
            `optimizer was given a parameter that does not require gradients (${p.dtype}[${p.shape.join(', ')}]); ` +
              `filter frozen parameters out`,
          );
        seen.add(p);
      }
    }
    if (seen.size === 0) throw new Error('optimizer got an empty parameter list');
  }

  abstract step(): void;

  /** Drops the gradients of all optimized parameters. */
  zeroGrad(): void {
    for (const g of this.groups) for (const p of g.params) p.grad = null;
  }

  /** Sets the learning rate of every group. */
  setLr(lr: number): void {
    for (const g of this.groups) g.options.lr = lr;
  }

  #allParams(): Tensor[] {
    return this.groups.flatMap((g) => g.params);
  }

  stateDict(): OptimizerState {
    const tensors = new Map<string, Tensor>();
    const scalars: Record<string, Record<string, number>> = {};
    this.#allParams().forEach((p, i) => {
      const s = this.state.get(p);
      if (!s) return;
      for (const [k, v] of Object.entries(s)) {
        if (v instanceof Tensor) tensors.set(`${i}.${k}`, v);
        else if (typeof v === 'number') (scalars[i] ??= {})[k] = v;
      }
    });
    let offset = 0;
    const groups = this.groups.map((g) => {
      const params = g.params.map((_, j) => offset + j);
      offset += g.params.length;
      return { ...g.options, params };
    });
    return { tensors, meta: { groups, scalars } };
  }

  loadStateDict(sd: OptimizerState): void {
    const params = this.#allParams();
    if (sd.meta.groups.length !== this.groups.length)
      throw new Error(
        `optimizer state has ${sd.meta.groups.length} parameter groups, this optimizer has ${this.groups.length}`,
      );
    sd.meta.groups.forEach((g, i) => {
      const { params: idx, ...options } = g as { params: number[] };
      if (idx.length !== this.groups[i]!.params.length)
        throw new Error(
          `optimizer state group ${i} has ${idx.length} parameters, this optimizer's has ` +
            `${this.groups[i]!.params.length}`,
        );
      this.groups[i]!.options = { ...this.groups[i]!.options, ...(options as Partial<O>) };
    });
    this.state.clear();
    const byParam = new Map<number, Record<string, Tensor | number>>();
    for (const [key, t] of sd.tensors) {
      const dot = key.indexOf('.');
      const i = Number(key.slice(0, dot));
      if (!(i >= 0 && i < params.length))
        throw new Error(`optimizer state names parameter ${key.slice(0, dot)}, but there are ${params.length}`);
      const p = params[i]!;
      if (t.shape.join() !== p.shape.join())
        throw new Error(
          `optimizer state ${key} has shape [${t.shape.join(', ')}] but parameter ${i} has [${p.shape.join(', ')}]`,
        );
      (byParam.get(i) ?? byParam.set(i, {}).get(i)!)[key.slice(dot + 1)] = keep(
        t.to({ device: p.device, dtype: p.dtype, copy: true }),
      );
    }
    for (const [i, s] of Object.entries(sd.meta.scalars))
      Object.assign(byParam.get(Number(i)) ?? byParam.set(Number(i), {}).get(Number(i))!, s);
    for (const [i, s] of byParam) this.state.set(params[i]!, s as S);
  }

  /** Frees the optimizer state now. */
  dispose(): void {
    for (const s of this.state.values()) for (const v of Object.values(s)) if (v instanceof Tensor) v.dispose();
    this.state.clear();
  }
}
