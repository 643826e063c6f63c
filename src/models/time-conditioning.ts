// Time conditioning of RepTok's decoder: random Fourier features of t, a linear map, and a SwiGLU mapping network
// (HDiT's). Reference: CompVis/RepTok FourierFeatures, MappingNetwork, RF.get_conditioning. Keys: `time_emb.weight`,
// `time_in_proj.weight`, `mapping.*`.
import { Tensor, cat, randn, tidy } from '../engine/index.ts';
import { Linear, Module, ModuleList, init } from '../nn/index.ts';
import { LinearSwiGLU, RMSNorm } from './decoder.ts';

export interface MappingConfig {
  width: number;
  depth: number;
  dFF: number;
}

/** [cos 2πtW, sin 2πtW] with a fixed Gaussian W (a buffer saved in checkpoints). */
export class FourierFeatures extends Module {
  readonly weight: Tensor; // (out/2, in)
  constructor(inFeatures: number, outFeatures: number, std = 1) {
    super();
    if (outFeatures % 2) throw new RangeError('FourierFeatures needs an even number of output features');
    this.weight = this.buffer('weight', randn([outFeatures / 2, inFeatures]).mul_(std));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const f = x.matmul(this.weight.transpose(0, 1)).mul(2 * Math.PI);
      return cat([f.cos(), f.sin()], -1);
    });
  }
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
