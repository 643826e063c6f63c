// SGD with momentum, dampening, Nesterov and weight decay, exactly as torch.optim.SGD.
import { Tensor, keep } from '../engine/index.ts';
import { native } from '../engine/native.ts';
import { Optimizer, type ParamsInput } from './optimizer.ts';

export interface SGDOptions {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  maximize: boolean;
}

type SGDState = { momentum_buffer?: Tensor };

export class SGD extends Optimizer<SGDOptions, SGDState> {
  constructor(params: ParamsInput<SGDOptions>, o: Partial<SGDOptions> & { lr: number }) {
    super(params, { momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false, ...o });
    if (this.groups.some((g) => g.options.nesterov && (g.options.momentum <= 0 || g.options.dampening !== 0))) {
      throw new Error('SGD: Nesterov momentum requires a momentum and zero dampening');
    }
  }

  step(): void {
    for (const g of this.groups) {
      const params = g.params.filter((p) => p.hasGrad);
      if (params.length === 0) continue;
      const bufs = params.map((p) => this.state.get(p)?.momentum_buffer?.handle ?? null);
      const out = native.sgdStep(
        params.map((p) => p.handle),
        bufs,
        g.options,
      );
      params.forEach((p, i) => {
        const h = out[i];
        if (h && bufs[i] === null) this.state.set(p, { momentum_buffer: keep(new Tensor(h)) });
      });
    }
  }
}
