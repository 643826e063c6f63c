// Exponential moving average of a model's weights: ema = decay·ema + (1 − decay)·θ after every step. Sampling
// with EMA weights is usually better than with the raw ones.
import { Tensor, keep, noGrad, type StateDict } from '../engine/index.ts';
import { native } from '../engine/native.ts';
import type { Module } from '../nn/index.ts';

export class EMA {
  readonly shadow: StateDict = new Map();

  /** Starts from a copy of the model's current parameters and persistent buffers. */
  constructor(
    private readonly model: Module,
    public decay = 0.9999,
  ) {
    noGrad(() => {
      for (const [k, t] of model.stateDict()) this.shadow.set(k, keep(t.detach().clone()));
    });
  }

  /** Moves the average towards the current weights (`decay` overrides the default for this step, e.g. warm-up). */
  update(decay = this.decay): void {
    const live = this.model.stateDict();
    const keys = [...this.shadow.keys()];
    native.emaUpdate(
      keys.map((k) => this.shadow.get(k)!.handle),
      keys.map((k) => live.get(k)!.handle),
      decay,
    );
  }

  /** Runs `fn` with the EMA weights loaded into the model, then restores the trained weights. */
  withWeights<T>(fn: () => T): T {
    const live = this.model.stateDict();
    const backup = new Map<string, Tensor>();
    noGrad(() => {
      for (const [k, t] of live) backup.set(k, keep(t.detach().clone()));
    });
    this.model.loadStateDict(this.shadow);
    try {
      return fn();
    } finally {
      this.model.loadStateDict(backup);
      for (const t of backup.values()) t.dispose();
    }
  }

  /** Copies the EMA weights into the model for good (e.g. before export). */
  copyTo(target: Module = this.model): void {
    target.loadStateDict(this.shadow);
  }

  loadStateDict(sd: StateDict): void {
    noGrad(() => {
      for (const [k, t] of this.shadow) {
        const v = sd.get(k);
        if (!v) throw new Error(`EMA state is missing '${k}'`);
        t.copy_(v);
      }
    });
  }

  dispose(): void {
    for (const t of this.shadow.values()) t.dispose();
    this.shadow.clear();
  }
}
