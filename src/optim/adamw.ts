// AdamW (Loshchilov & Hutter), exactly as torch.optim.AdamW: decoupled weight decay, bias correction, optional
// amsgrad. The whole update runs in one native call per group.
import { Tensor, keep, zerosLike } from '../engine/index.ts';
import { native } from '../engine/native.ts';
import { Optimizer, type ParamsInput } from './optimizer.ts';

export interface AdamWOptions {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  amsgrad: boolean;
  maximize: boolean;
}

type AdamWState = { step: number; exp_avg: Tensor; exp_avg_sq: Tensor; max_exp_avg_sq?: Tensor };

export class AdamW extends Optimizer<AdamWOptions, AdamWState> {
  constructor(params: ParamsInput<AdamWOptions>, o: Partial<AdamWOptions> = {}) {
    super(params, {
      lr: 1e-3,
      betas: [0.9, 0.999],
      eps: 1e-8,
      weightDecay: 1e-2,
      amsgrad: false,
      maximize: false,
      ...o,
    });
  }

  step(): void {
    for (const g of this.groups) {
      const o = g.options;
      // Parameters whose state has the same step count update together (all of them, unless some had no gradient).
      const byStep = new Map<number, { p: Tensor; s: AdamWState }[]>();
      for (const p of g.params) {
        if (!p.hasGrad) continue;
        let s = this.state.get(p);
        if (!s) {
          s = { step: 0, exp_avg: keep(zerosLike(p)), exp_avg_sq: keep(zerosLike(p)) };
          if (o.amsgrad) s.max_exp_avg_sq = keep(zerosLike(p));
          this.state.set(p, s);
        }
        s.step += 1;
        (byStep.get(s.step) ?? byStep.set(s.step, []).get(s.step)!).push({ p, s });
      }
      for (const [step, items] of byStep) {
        native.adamwStep(
          items.map((i) => i.p.handle),
          items.map((i) => i.s.exp_avg.handle),
          items.map((i) => i.s.exp_avg_sq.handle),
          o.amsgrad ? items.map((i) => i.s.max_exp_avg_sq!.handle) : null,
          {
            lr: o.lr,
            beta1: o.betas[0],
            beta2: o.betas[1],
            eps: o.eps,
            weightDecay: o.weightDecay,
            step,
            amsgrad: o.amsgrad,
            maximize: o.maximize,
          },
        );
      }
    }
  }
}
