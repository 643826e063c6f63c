// Neural-network functions (torch.nn.functional): activations, normalisations, convolutions, pooling, resizing,
// attention, losses. Arguments and defaults follow PyTorch; option bags replace Python keyword arguments.
import { Tensor, aten, hasOp, type GeneratorLike, type Shape } from './tensor.ts';
import { emptyLike } from './creation.ts';
import { tidy } from './scope.ts';

export {
  linear,
  gelu,
  rmsNorm,
  swiglu,
  tokenMlp,
  cosineRopeQK,
  applyRotary,
  scaledDotProductAttention,
} from './fused.ts';

type Pair = number | readonly [number, number];
type Reduction = 'none' | 'mean' | 'sum';
const REDUCTION: Record<Reduction, number> = { none: 0, mean: 1, sum: 2 };

function reduction(r: Reduction | undefined): number {
  const code = REDUCTION[r ?? 'mean'];
  if (code === undefined) throw new TypeError(`reduction must be 'none', 'mean' or 'sum', got '${r}'`);
  return code;
}

// ---------------------------------------------------------------------------------------------------------------
// Linear maps and activations
// ---------------------------------------------------------------------------------------------------------------

export const silu = (x: Tensor): Tensor => aten('aten::silu', x);
export const relu = (x: Tensor): Tensor => aten('aten::relu', x);
export const sigmoid = (x: Tensor): Tensor => aten('aten::sigmoid', x);
export const tanh = (x: Tensor): Tensor => aten('aten::tanh', x);
export const softmax = (x: Tensor, dim: number): Tensor => aten('aten::softmax.int', x, dim);
export const logSoftmax = (x: Tensor, dim: number): Tensor => aten('aten::log_softmax.int', x, dim);

// ---------------------------------------------------------------------------------------------------------------
// Normalisation
// ---------------------------------------------------------------------------------------------------------------

/**
 * Normalisations take a bfloat16/float16 input with float32 affine parameters (what a Linear under `autocast` feeds
 * them) by normalising in float32, as autocast's float32 policy does; libtorch 1.13's CPU kernels reject the mix.
 */
const normInput = (x: Tensor, weight?: Tensor | null): Tensor =>
  weight && x.dtype !== weight.dtype && (x.dtype === 'bfloat16' || x.dtype === 'float16')
    ? x.to({ dtype: weight.dtype })
    : x;
export const layerNorm = (
  x: Tensor,
  normalizedShape: Shape,
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
): Tensor => aten('aten::layer_norm', normInput(x, weight), normalizedShape, weight ?? null, bias ?? null, eps, true);
export const groupNorm = (
  x: Tensor,
  numGroups: number,
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
): Tensor => aten('aten::group_norm', normInput(x, weight), numGroups, weight ?? null, bias ?? null, eps, true);
/** x / max(‖x‖_p, eps) along `dim` (F.normalize). */
export const normalize = (x: Tensor, p = 2, dim = 1, eps = 1e-12): Tensor =>
  tidy(() => x.div(x.norm(p, dim, true).clampMin(eps).expandAs(x)));

// ---------------------------------------------------------------------------------------------------------------
// Convolution and pooling
// ---------------------------------------------------------------------------------------------------------------

export interface ConvOptions {
  stride?: Pair;
  /** Zero padding per side, or 'same'/'valid'. */
  padding?: Pair | 'same' | 'valid';
  dilation?: Pair;
  groups?: number;
}

export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, o: ConvOptions = {}): Tensor {
  const padding = o.padding ?? 0;
  const op = typeof padding === 'string' ? 'aten::conv2d.padding' : 'aten::conv2d';
  return aten(op, x, weight, bias ?? null, o.stride ?? 1, padding, o.dilation ?? 1, o.groups ?? 1);
}

export function conv1d(
  x: Tensor,
  weight: Tensor,
  bias?: Tensor | null,
  o: { stride?: number; padding?: number | 'same' | 'valid'; dilation?: number; groups?: number } = {},
): Tensor {
  const padding = o.padding ?? 0;
  const op = typeof padding === 'string' ? 'aten::conv1d.padding' : 'aten::conv1d';
  return aten(op, x, weight, bias ?? null, o.stride ?? 1, padding, o.dilation ?? 1, o.groups ?? 1);
}

export function convTranspose2d(
  x: Tensor,
  weight: Tensor,
  bias?: Tensor | null,
  o: { stride?: Pair; padding?: Pair; outputPadding?: Pair; groups?: number; dilation?: Pair } = {},
): Tensor {
  return aten(
    'aten::conv_transpose2d.input',
    x,
    weight,
    bias ?? null,
    o.stride ?? 1,
    o.padding ?? 0,
    o.outputPadding ?? 0,
    o.groups ?? 1,
    o.dilation ?? 1,
  );
}

export function avgPool2d(
  x: Tensor,
  kernelSize: Pair,
  o: { stride?: Pair; padding?: Pair; ceilMode?: boolean; countIncludePad?: boolean; divisorOverride?: number } = {},
): Tensor {
  return aten(
    'aten::avg_pool2d',
    x,
    kernelSize,
    o.stride ?? kernelSize,
    o.padding ?? 0,
    o.ceilMode ?? false,
    o.countIncludePad ?? true,
    o.divisorOverride ?? null,
  );
}

export function maxPool2d(
  x: Tensor,
  kernelSize: Pair,
  o: { stride?: Pair; padding?: Pair; dilation?: Pair; ceilMode?: boolean } = {},
): Tensor {
  return aten(
    'aten::max_pool2d',
    x,
    kernelSize,
    o.stride ?? kernelSize,
    o.padding ?? 0,
    o.dilation ?? 1,
    o.ceilMode ?? false,
  );
}

export const adaptiveAvgPool2d = (x: Tensor, outputSize: Pair): Tensor =>
  aten('aten::adaptive_avg_pool2d', x, typeof outputSize === 'number' ? [outputSize, outputSize] : outputSize);

/** Pads the last dimensions: `pad` lists (left, right, top, bottom, ...) like F.pad. */
export function pad(
  x: Tensor,
  padding: readonly number[],
  mode: 'constant' | 'reflect' | 'replicate' = 'constant',
  value = 0,
): Tensor {
  if (mode === 'constant') return aten('aten::constant_pad_nd', x, padding, value);
  const n = padding.length / 2;
  if (n !== 1 && n !== 2)
    throw new RangeError(`pad: '${mode}' padding supports the last 1 or 2 dimensions, got ${padding.length} values`);
  return aten(`aten::${mode === 'reflect' ? 'reflection' : 'replication'}_pad${n}d`, x, padding);
}

// ---------------------------------------------------------------------------------------------------------------
// Resizing (F.interpolate)
// ---------------------------------------------------------------------------------------------------------------

export interface InterpolateOptions {
  size?: number | readonly number[];
  scaleFactor?: number | readonly number[];
  mode?: 'nearest' | 'nearest-exact' | 'linear' | 'bilinear' | 'bicubic' | 'area';
  alignCorners?: boolean;
  /** Anti-aliasing when downsampling (bilinear and bicubic on 4-D inputs). */
  antialias?: boolean;
  /** Compute the output size from the scale factor and then forget the factor (PyTorch's flag). */
  recomputeScaleFactor?: boolean;
}

/**
 * Resizes (N, C, W) or (N, C, H, W) inputs exactly like F.interpolate. With `scaleFactor` the kernels receive the
 * factor itself (not output/input), which changes the sampling positions; DINOv2's position-embedding resize depends
 * on that path.
 */
export function interpolate(x: Tensor, o: InterpolateOptions): Tensor {
  const mode = o.mode ?? 'nearest';
  const spatial = x.ndim - 2;
  if (spatial < 1 || spatial > 2)
    throw new RangeError(`interpolate: expected a 3-D or 4-D input, got shape [${x.shape.join(', ')}]`);
  if ((o.size === undefined) === (o.scaleFactor === undefined))
    throw new TypeError('interpolate: give exactly one of size and scaleFactor');
  const perDim = (v: number | readonly number[], what: string): number[] => {
    const a = typeof v === 'number' ? Array(spatial).fill(v) : [...v];
    if (a.length !== spatial)
      throw new RangeError(`interpolate: ${what} needs ${spatial} values for a ${x.ndim}-D input`);
    return a;
  };
  let size = o.size === undefined ? null : perDim(o.size, 'size');
  let scales = o.scaleFactor === undefined ? null : perDim(o.scaleFactor, 'scaleFactor');
  if (o.recomputeScaleFactor && scales) {
    size = scales.map((s, i) => Math.floor(x.shape[i + 2]! * s));
    scales = null;
  }
  const needsCorners = mode === 'linear' || mode === 'bilinear' || mode === 'bicubic';
  if (!needsCorners && o.alignCorners !== undefined)
    throw new TypeError(`interpolate: alignCorners only applies to linear, bilinear and bicubic modes, not '${mode}'`);
  const corners = o.alignCorners ?? false;
  if (o.antialias && !((mode === 'bilinear' || mode === 'bicubic') && spatial === 2)) {
    throw new TypeError('interpolate: antialias is only available for bilinear and bicubic modes on 4-D inputs');
  }
  const d = `${spatial}d`;
  switch (mode) {
    case 'nearest':
      return aten(`aten::upsample_nearest${d}.vec`, x, size, scales);
    case 'nearest-exact':
      return aten(`aten::_upsample_nearest_exact${d}.vec`, x, size, scales);
    case 'area': {
      const out = size ?? scales!.map((s, i) => Math.floor(x.shape[i + 2]! * s));
      return aten(spatial === 2 ? 'aten::adaptive_avg_pool2d' : 'aten::adaptive_avg_pool1d', x, out);
    }
    case 'linear':
      if (spatial !== 1) throw new TypeError("interpolate: 'linear' needs a 3-D input; use 'bilinear' for 4-D");
      return aten('aten::upsample_linear1d.vec', x, size, corners, scales);
    case 'bilinear':
    case 'bicubic': {
      if (spatial !== 2) throw new TypeError(`interpolate: '${mode}' needs a 4-D input`);
      const op = o.antialias ? `aten::_upsample_${mode}2d_aa.vec` : `aten::upsample_${mode}2d.vec`;
      if (o.antialias && !hasOp(op))
        throw new Error(`interpolate: this libtorch has no antialiased ${mode} kernel (${op})`);
      return aten(op, x, size, corners, scales);
    }
    default:
      throw new TypeError(`interpolate: unknown mode '${mode as string}'`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Embedding, dropout, attention
// ---------------------------------------------------------------------------------------------------------------

export const embedding = (indices: Tensor, weight: Tensor, paddingIdx = -1): Tensor =>
  aten('aten::embedding', weight, indices, paddingIdx, false, false);
export const oneHot = (indices: Tensor, numClasses = -1): Tensor => aten('aten::one_hot', indices, numClasses);

/**
 * Zeroes elements with probability p and scales the rest by 1/(1-p) during training. Computed as PyTorch's CPU
 * kernel does (a Bernoulli mask, divided, multiplied), so the global generator gives PyTorch's numbers; pass a
 * `generator` for a reproducible stream of its own.
 */
export function dropout(x: Tensor, p: number, training = true, generator?: GeneratorLike): Tensor {
  if (p < 0 || p > 1) throw new RangeError(`dropout probability has to be between 0 and 1, got ${p}`);
  // a new handle on the same memory: no copy, as PyTorch returns x
  if (!training || p === 0) return aten('aten::alias', x);
  if (p === 1) return x.mul(0);
  return tidy(() =>
    x.mul(
      emptyLike(x)
        .bernoulli_(1 - p, generator)
        .div_(1 - p),
    ),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Losses and similarities
// ---------------------------------------------------------------------------------------------------------------

export const mseLoss = (input: Tensor, target: Tensor, r?: Reduction): Tensor =>
  aten('aten::mse_loss', input, target, reduction(r));
export const l1Loss = (input: Tensor, target: Tensor, r?: Reduction): Tensor =>
  aten('aten::l1_loss', input, target, reduction(r));

/** Cross-entropy of logits (N, C, ...) against class indices (N, ...) or class probabilities. */
export function crossEntropy(
  input: Tensor,
  target: Tensor,
  o: { reduction?: Reduction; ignoreIndex?: number; labelSmoothing?: number; weight?: Tensor } = {},
): Tensor {
  return aten(
    'aten::cross_entropy_loss',
    input,
    target,
    o.weight ?? null,
    reduction(o.reduction),
    o.ignoreIndex ?? -100,
    o.labelSmoothing ?? 0,
  );
}

export const cosineSimilarity = (x1: Tensor, x2: Tensor, dim = 1, eps = 1e-8): Tensor =>
  aten('aten::cosine_similarity', x1, x2, dim, eps);
