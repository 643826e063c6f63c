// Parameter initialisation (torch.nn.init), in place and without gradient tracking. Each accepts an optional
// Generator; without one they draw from the global generator in the same order as PyTorch, so a seeded model
// initialises to PyTorch's numbers.
import { Tensor, full, noGrad, type GeneratorLike } from '../engine/index.ts';

/** fan_in and fan_out of a weight (out, in, *kernel), as torch.nn.init computes them. */
export function fans(t: Tensor): { fanIn: number; fanOut: number } {
  if (t.ndim < 2) throw new RangeError(`fan in/out need at least 2 dimensions, got shape [${t.shape.join(', ')}]`);
  const receptive = t.shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: t.shape[1]! * receptive, fanOut: t.shape[0]! * receptive };
}

export const zeros_ = (t: Tensor): Tensor => noGrad(() => t.zero_());
export const ones_ = (t: Tensor): Tensor => noGrad(() => t.fill_(1));
export const constant_ = (t: Tensor, value: number): Tensor => noGrad(() => t.fill_(value));
export const uniform_ = (t: Tensor, a = 0, b = 1, g?: GeneratorLike): Tensor => noGrad(() => t.uniform_(a, b, g));
export const normal_ = (t: Tensor, mean = 0, std = 1, g?: GeneratorLike): Tensor =>
  noGrad(() => t.normal_(mean, std, g));

// erf of a double, exactly as libm computes it (JavaScript has no Math.erf).
function erf(x: number): number {
  const t = full([], x, { dtype: 'float64' });
  const r = t.erf();
  const v = r.item();
  t.dispose();
  r.dispose();
  return v;
}

/** Normal(mean, std) truncated to [a, b] by inverse-CDF sampling (torch.nn.init.trunc_normal_). */
export function truncNormal_(t: Tensor, mean = 0, std = 1, a = -2, b = 2, g?: GeneratorLike): Tensor {
  const cdf = (x: number): number => (1 + erf(x / Math.SQRT2)) / 2;
  const l = cdf((a - mean) / std);
  const u = cdf((b - mean) / std);
  return noGrad(() =>
    t
      .uniform_(2 * l - 1, 2 * u - 1, g)
      .erfinv_()
      .mul_(std * Math.SQRT2)
      .add_(mean)
      .clamp_(a, b),
  );
}

/** Recommended gain for a nonlinearity (torch.nn.init.calculate_gain). */
export function calculateGain(
  nonlinearity: 'linear' | 'sigmoid' | 'tanh' | 'relu' | 'leaky_relu' | 'selu',
  param = 0.01,
): number {
  switch (nonlinearity) {
    case 'linear':
    case 'sigmoid':
      return 1;
    case 'tanh':
      return 5 / 3;
    case 'relu':
      return Math.SQRT2;
    case 'leaky_relu':
      return Math.sqrt(2 / (1 + param * param));
    case 'selu':
      return 3 / 4;
  }
}

export function xavierUniform_(t: Tensor, gain = 1, g?: GeneratorLike): Tensor {
  const { fanIn, fanOut } = fans(t);
  const bound = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform_(t, -bound, bound, g);
}

export function xavierNormal_(t: Tensor, gain = 1, g?: GeneratorLike): Tensor {
  const { fanIn, fanOut } = fans(t);
  return normal_(t, 0, gain * Math.sqrt(2 / (fanIn + fanOut)), g);
}

export interface KaimingOptions {
  a?: number;
  mode?: 'fan_in' | 'fan_out';
  nonlinearity?: 'relu' | 'leaky_relu' | 'linear';
  generator?: GeneratorLike;
}

export function kaimingUniform_(t: Tensor, o: KaimingOptions = {}): Tensor {
  const f = fans(t);
  const fan = (o.mode ?? 'fan_in') === 'fan_in' ? f.fanIn : f.fanOut;
  const bound = calculateGain(o.nonlinearity ?? 'leaky_relu', o.a ?? 0) * Math.sqrt(3 / fan);
  return uniform_(t, -bound, bound, o.generator);
}

export function kaimingNormal_(t: Tensor, o: KaimingOptions = {}): Tensor {
  const f = fans(t);
  const fan = (o.mode ?? 'fan_in') === 'fan_in' ? f.fanIn : f.fanOut;
  return normal_(t, 0, calculateGain(o.nonlinearity ?? 'leaky_relu', o.a ?? 0) / Math.sqrt(fan), o.generator);
}

/** PyTorch's default init of Linear and Conv layers: kaiming_uniform_(a=√5) weights, U(±1/√fan_in) biases. */
export function defaultLayerInit_(weight: Tensor, bias: Tensor | null, g?: GeneratorLike): void {
  kaimingUniform_(weight, { a: Math.sqrt(5), generator: g });
  if (bias) {
    const bound = 1 / Math.sqrt(fans(weight).fanIn);
    uniform_(bias, -bound, bound, g);
  }
}
