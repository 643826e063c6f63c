// Containers: Sequential and ModuleList, whose children are named '0', '1', ... as in PyTorch.
import type { Tensor } from '../engine/index.ts';
import { Module } from './module.ts';
import type { UnaryModule } from './layers.ts';

export class ModuleList<M extends Module = Module> extends Module implements Iterable<M> {
  readonly #items: M[] = [];

  constructor(items: Iterable<M> = []) {
    super();
    for (const m of items) this.push(m);
  }

  push(m: M): this {
    this.#items.push(this.module(String(this.#items.length), m));
    return this;
  }

  at(i: number): M {
    const m = this.#items.at(i);
    if (!m) throw new RangeError(`ModuleList index ${i} out of range (length ${this.#items.length})`);
    return m;
  }

  get length(): number {
    return this.#items.length;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.#items[Symbol.iterator]();
  }
}

/** Applies its children in order. Intermediate results are freed as soon as the next child has consumed them. */
export class Sequential extends ModuleList<UnaryModule> implements UnaryModule {
  constructor(...modules: UnaryModule[]) {
    super(modules);
  }

  forward(x: Tensor): Tensor {
    let h = x;
    for (const m of this) {
      const next = m.forward(h);
      if (h !== x && next !== h) h.dispose();
      h = next;
    }
    return h;
  }
}
