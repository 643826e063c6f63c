// Embeddings of a continuous time t: random Fourier features (HDiT's, the decoder's time input) and DiT's
// sinusoidal features followed by an MLP (the generators' time input). Names are the references' (`weight`,
// `mlp.{0,2}`).
import { F, Tensor, arange, cat, randn, tidy } from '../engine/index.ts';
import { Linear, SiLU } from './layers.ts';
import { Sequential } from './containers.ts';
import { Module } from './module.ts';

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

/** Sinusoidal features of t (N, dim): [cos(t·f), sin(t·f)] with f_i = exp(−ln(max_period)·i/(dim/2)). */
export function timestepEmbedding(t: Tensor, dim: number, maxPeriod = 10_000): Tensor {
  return tidy(() => {
    const half = Math.floor(dim / 2);
    const freqs = arange(0, half, 1, { dtype: 'float32', device: t.device }).mul(-Math.log(maxPeriod)).div(half).exp();
    const args = t.unsqueeze(1).float().mul(freqs.unsqueeze(0));
    const emb = cat([args.cos(), args.sin()], -1);
    return dim % 2 ? F.pad(emb, [0, 1]) : emb;
  });
}

export class TimestepEmbedder extends Module {
  readonly mlp: Sequential;
  constructor(
    hidden: number,
    readonly frequencyDim = 256,
  ) {
    super();
    this.mlp = this.module(
      'mlp',
      new Sequential(new Linear(frequencyDim, hidden), new SiLU(), new Linear(hidden, hidden)),
    );
  }
  forward(t: Tensor): Tensor {
    return tidy(() => this.mlp.forward(timestepEmbedding(t, this.frequencyDim)));
  }
}
