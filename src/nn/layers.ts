// The basic layers (torch.nn equivalents) with PyTorch's parameter names, shapes and default initialisation.
import { Tensor, F, empty, ones, zeros, type GeneratorLike } from '../engine/index.ts';
import { Module } from './module.ts';
import { defaultLayerInit_, normal_ } from './init.ts';

/** A module that maps one tensor to one tensor (what Sequential chains). */
export interface UnaryModule extends Module {
  forward(x: Tensor): Tensor;
}

// ---------------------------------------------------------------------------------------------------------------
// Linear and convolutions
// ---------------------------------------------------------------------------------------------------------------

export class Linear extends Module implements UnaryModule {
  readonly weight: Tensor; // (out, in)
  readonly bias: Tensor | null; // (out)

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    o: { bias?: boolean; generator?: GeneratorLike } = {},
  ) {
    super();
    this.weight = this.param('weight', empty([outFeatures, inFeatures]));
    this.bias = (o.bias ?? true) ? this.param('bias', empty([outFeatures])) : null;
    defaultLayerInit_(this.weight, this.bias, o.generator);
  }

  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }
}

type Pair = number | [number, number];
const pair = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : v);

export class Conv2d extends Module implements UnaryModule {
  readonly weight: Tensor; // (out, in/groups, kh, kw)
  readonly bias: Tensor | null;
  readonly stride: [number, number];
  readonly padding: [number, number] | 'same' | 'valid';
  readonly dilation: [number, number];
  readonly groups: number;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: Pair,
    o: {
      stride?: Pair;
      padding?: Pair | 'same' | 'valid';
      dilation?: Pair;
      groups?: number;
      bias?: boolean;
      generator?: GeneratorLike;
    } = {},
  ) {
    super();
    const [kh, kw] = pair(kernelSize);
    this.groups = o.groups ?? 1;
    if (inChannels % this.groups || outChannels % this.groups)
      throw new RangeError(
        `Conv2d: channels (${inChannels} -> ${outChannels}) must be divisible by groups (${this.groups})`,
      );
    this.stride = pair(o.stride ?? 1);
    this.padding = typeof o.padding === 'string' ? o.padding : pair(o.padding ?? 0);
    this.dilation = pair(o.dilation ?? 1);
    this.weight = this.param('weight', empty([outChannels, inChannels / this.groups, kh, kw]));
    this.bias = (o.bias ?? true) ? this.param('bias', empty([outChannels])) : null;
    defaultLayerInit_(this.weight, this.bias, o.generator);
  }

  forward(x: Tensor): Tensor {
    return F.conv2d(x, this.weight, this.bias, {
      stride: this.stride,
      padding: this.padding,
      dilation: this.dilation,
      groups: this.groups,
    });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Normalisation
// ---------------------------------------------------------------------------------------------------------------

export class LayerNorm extends Module implements UnaryModule {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  readonly normalizedShape: number[];

  constructor(
    normalizedShape: number | number[],
    readonly eps = 1e-5,
    o: { elementwiseAffine?: boolean; bias?: boolean } = {},
  ) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : normalizedShape;
    const affine = o.elementwiseAffine ?? true;
    this.weight = affine ? this.param('weight', ones(this.normalizedShape)) : null;
    this.bias = affine && (o.bias ?? true) ? this.param('bias', zeros(this.normalizedShape)) : null;
  }

  forward(x: Tensor): Tensor {
    return F.layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}

export class GroupNorm extends Module implements UnaryModule {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;

  constructor(
    readonly numGroups: number,
    readonly numChannels: number,
    readonly eps = 1e-5,
    affine = true,
  ) {
    super();
    if (numChannels % numGroups)
      throw new RangeError(`GroupNorm: ${numChannels} channels are not divisible into ${numGroups} groups`);
    this.weight = affine ? this.param('weight', ones([numChannels])) : null;
    this.bias = affine ? this.param('bias', zeros([numChannels])) : null;
  }

  forward(x: Tensor): Tensor {
    return F.groupNorm(x, this.numGroups, this.weight, this.bias, this.eps);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Embedding, dropout, activations
// ---------------------------------------------------------------------------------------------------------------

export class Embedding extends Module {
  readonly weight: Tensor; // (num, dim)

  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
    o: { generator?: GeneratorLike } = {},
  ) {
    super();
    this.weight = this.param('weight', normal_(empty([numEmbeddings, embeddingDim]), 0, 1, o.generator));
  }

  forward(indices: Tensor): Tensor {
    return F.embedding(indices, this.weight);
  }
}

export class Dropout extends Module implements UnaryModule {
  constructor(
    readonly p = 0.5,
    readonly generator?: GeneratorLike,
  ) {
    super();
  }

  forward(x: Tensor): Tensor {
    return F.dropout(x, this.p, this.training, this.generator);
  }
}

/** Activation layers (no parameters; they exist so Sequential indices match the reference, e.g. `mlp.{0,2}`). */
export class GELU extends Module implements UnaryModule {
  constructor(readonly approximate: 'none' | 'tanh' = 'none') {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.gelu(x, this.approximate);
  }
}

export class SiLU extends Module implements UnaryModule {
  forward(x: Tensor): Tensor {
    return F.silu(x);
  }
}

export class ReLU extends Module implements UnaryModule {
  forward(x: Tensor): Tensor {
    return F.relu(x);
  }
}

export class Tanh extends Module implements UnaryModule {
  forward(x: Tensor): Tensor {
    return F.tanh(x);
  }
}

/** Returns its input (the same Tensor object). */
export class Identity extends Module implements UnaryModule {
  forward(x: Tensor): Tensor {
    return x;
  }
}
