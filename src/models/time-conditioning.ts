// Time conditioning of RepTok's decoder: random Fourier features of t (nn/time-embedding.ts), a linear map, and the
// SwiGLU mapping network defined here (HDiT's). Reference: CompVis/RepTok MappingNetwork, RF.get_conditioning.
// Keys: `mapping.*`.
import { Tensor, tidy } from '../engine/index.ts';
import { Linear, LinearSwiGLU, Module, ModuleList, RMSNorm, init } from '../nn/index.ts';

export interface MappingConfig {
  width: number;
  depth: number;
  dFF: number;
}

class MappingFeedForward extends Module {
  readonly norm: RMSNorm;
  readonly upProj: LinearSwiGLU;
  readonly downProj: Linear;
  constructor(width: number, dFF: number) {
    super();
    this.norm = this.module('norm', new RMSNorm(width));
    this.upProj = this.module('up_proj', new LinearSwiGLU(width, dFF));
    this.downProj = this.module('down_proj', new Linear(dFF, width, { bias: false }));
    init.zeros_(this.downProj.weight);
  }
  forward(x: Tensor): Tensor {
    return tidy(() => x.add(this.downProj.forward(this.upProj.forward(this.norm.forward(x)))));
  }
}

export class MappingNetwork extends Module {
  readonly inNorm: RMSNorm;
  readonly blocks: ModuleList<MappingFeedForward>;
  readonly outNorm: RMSNorm;
  constructor(c: MappingConfig) {
    super();
    this.inNorm = this.module('in_norm', new RMSNorm(c.width));
    this.blocks = this.module(
      'blocks',
      new ModuleList(Array.from({ length: c.depth }, () => new MappingFeedForward(c.width, c.dFF))),
    );
    this.outNorm = this.module('out_norm', new RMSNorm(c.width));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      let h = this.inNorm.forward(x);
      for (const b of this.blocks) h = b.forward(h);
      return this.outNorm.forward(h);
    });
  }
}
