// RMSNorm (Zhang & Sennrich, 2019) with a learned scale, and its adaptive form whose scale comes from a conditioning
// vector (HDiT's AdaRMSNorm). Parameter names are the reference's (`scale`, `linear.weight`).
import { F, Tensor, tidy, zeros } from '../engine/index.ts';
import { Linear } from './layers.ts';
import { Module } from './module.ts';
import * as init from './init.ts';

export class RMSNorm extends Module {
  readonly scale: Tensor;
  constructor(
    features: number,
    readonly eps = 1e-6,
  ) {
    super();
    this.scale = this.param('scale', zeros([features]).add_(1));
  }
  forward(x: Tensor): Tensor {
    return F.rmsNorm(x, this.scale, this.eps);
  }
}

/**
 * RMSNorm whose scale is 1 + Linear(cond): adaptive on the time embedding (zero-initialised, so it starts as RMSNorm).
 */
export class AdaRMSNorm extends Module {
  readonly linear: Linear;
  constructor(
    features: number,
    condFeatures: number,
    readonly eps = 1e-6,
  ) {
    super();
    this.linear = this.module('linear', new Linear(condFeatures, features, { bias: false }));
    init.zeros_(this.linear.weight);
  }
  forward(x: Tensor, cond: Tensor): Tensor {
    // cond (B, C) -> scale (B, 1, W)
    return tidy(() => F.rmsNorm(x, this.linear.forward(cond).unsqueeze(1).add(1), this.eps));
  }
}
