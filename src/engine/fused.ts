// Fused kernels (native/kernels/) for chains that eager code runs as many small kernels, and linear layers on
// oneDNN's GEMMs (native/kernels/linear.cc), each next to the ATen formula it replaces. The fused path runs on CPU
// tensors of float32, float64 or bfloat16 (bf16 activations under autocast, computed in float32 inside; float32 and
// bf16 for the linear), the composite path everywhere else — CUDA, other dtype mixes — and whenever fused kernels
// are switched off (`setFusedKernels(false)`: parity checks, debugging). Both paths have gradients; the fused
// backward is first-order only (create_graph through it is an error).
import { Tensor, aten } from './tensor.ts';
import { cat } from './ops.ts';
import { ones } from './creation.ts';
import { native } from './native.ts';
import { tidy } from './scope.ts';

const silu = (x: Tensor): Tensor => aten('aten::silu', x);

let fusedEnabled = true;

/** Turns the fused kernels on or off for this process (default on); returns the previous setting. */
export function setFusedKernels(enabled: boolean): boolean {
  const previous = fusedEnabled;
  fusedEnabled = enabled;
  return previous;
}

/**
 * Runs bfloat16 attention's products on AVX512-BF16's vdpbf16ps (bf16 operands, float32 accumulation; the default
 * where the CPU has it) or, switched off, on float32 operands widened from bf16 (the path every other CPU takes);
 * tests compare the two. Returns whether the vdpbf16ps path is now in use: never on a CPU without AVX512-BF16.
 */
export function setAttentionBf16Dot(enabled: boolean): boolean {
  return native.attentionBf16Dot(enabled);
}

/**
 * Whether the fused kernels take these CPU tensors: the activations `acts` of one dtype, float32, float64 or
 * bfloat16, and the parameters `params` (scales, RoPE tables) in the activations' dtype, or in float32 next to
 * bfloat16 activations (autocast keeps parameters in float32); `bf16Params`: a bfloat16 parameter is taken too
 * (AdaRMSNorm's scale comes out of a linear). The fused ops return the activations' dtype.
 */
const fusable = (acts: Tensor[], params: Tensor[] = [], bf16Params = false): boolean => {
  if (!fusedEnabled) return false;
  const dtype = acts[0]!.dtype;
  const paramOk = (p: Tensor): boolean =>
    p.dtype === (dtype === 'bfloat16' ? 'float32' : dtype) || (bf16Params && p.dtype === dtype);
  return (
    (dtype === 'float32' || dtype === 'float64' || dtype === 'bfloat16') &&
    [...acts, ...params].every((t) => t.device === 'cpu') &&
    acts.every((t) => t.dtype === dtype) &&
    params.every(paramOk)
  );
};

const onednn = native.onednnGemm();

/**
 * x @ weightᵀ + bias. CPU float32 and bfloat16 run oneDNN's GEMMs with their own backward (native/kernels/linear.cc)
 * when this libtorch ships oneDNN: sgemm for float32; under CPU autocast or with bfloat16 inputs, gemm_bf16bf16f32
 * (bf16 operands, float32 accumulation, the weight's bf16 copy made once per parameter version). Everything else
 * runs aten::linear — also layers with fewer than 16 inputs or outputs (the generator's token mixing over 3 tokens:
 * 1.15-1.4× OpenBLAS's time in oneDNN). Measured in-process against aten::linear: float32 tokenizer shapes
 * 0.84-0.93×; the generator's 1152↔4608 layers 1.0-1.05× alone, yet its training step 0.9× with oneDNN throughout
 * (its backward products gain); bf16 products 0.5× sgemm's time on AVX512-BF16.
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const wide = weight.ndim === 2 && weight.shape[0]! >= 16 && weight.shape[1]! >= 16;
  const ts = bias ? [x, weight, bias] : [x, weight];
  const onCpu = ts.every((t) => t.device === 'cpu' && (t.dtype === 'float32' || t.dtype === 'bfloat16'));
  if (onednn.float32 && fusedEnabled && wide && onCpu) return aten('reptok::linear', x, weight, bias ?? null);
  return aten('aten::linear', x, weight, bias ?? null);
}

/**
 * Marks float32 CPU weights (2-D: linear layers') for inference on packed copies: their forward-only calls (noGrad,
 * or nothing requires a gradient) then run oneDNN's matmul primitive over a copy of the weight in its kernel's
 * blocked layout, made on first use and kept per parameter version, instead of sgemm, which packs the weight again
 * on every call. The paper-scale generator's guided sampling step takes 0.84× the time. The price is a second,
 * float32 copy of every marked weight, which is why nothing is packed unasked: the pipeline (`RepTok`) marks its
 * models, training does not. bf16 forward-only calls use packed bf16 copies whether marked or not. `enabled` false
 * unmarks and frees the copies. A mark follows the tensor's storage: `Module.to()` drops it. Other weights (views,
 * other dtypes, other devices) are skipped, and so is everything in a libtorch without oneDNN's matmul primitives
 * (`runtimeInfo().float32Matmul` is null). Returns how many weights are marked by this call.
 */
export function packForInference(weights: Tensor[], enabled = true): number {
  const cpu32 = weights.filter((w) => w.ndim === 2 && w.device === 'cpu' && w.dtype === 'float32');
  return native.packForInference(
    cpu32.map((w) => w.handle),
    enabled,
  );
}

/**
 * Frees the engine's copies of these weights now (the bf16 copies of training under autocast, the packed ones) and
 * unmarks them; `Module.dispose()` does it for its parameters. Copies of weights that are simply dropped go at the
 * cache's next sweep instead.
 */
export function dropWeightCopies(weights: Tensor[]): void {
  native.dropWeightCopies(weights.map((w) => w.handle));
}

/**
 * RMSNorm with a scale: x · (s · rsqrt(mean(x², -1) + eps)). The fused kernel takes `scale` as (W), or
 * (B, 1, …, W) for x (B, …, W): a per-sample scale, as AdaRMSNorm makes it. Other broadcastable shapes run
 * the composite.
 */
export function rmsNorm(x: Tensor, scale: Tensor, eps = 1e-6): Tensor {
  const W = x.shape[x.ndim - 1]!;
  const perSample =
    scale.ndim === x.ndim &&
    scale.shape[0] === x.shape[0] &&
    scale.shape.every((n, i) => i === 0 || i === x.ndim - 1 || n === 1);
  if (scale.shape[scale.ndim - 1] === W && (scale.numel === W || perSample) && fusable([x], [scale], true))
    return aten('reptok::rms_norm', x, scale, eps);
  return tidy(() => x.mul(scale.mul(x.square().mean(-1, true).add(eps).rsqrt())));
}

/**
 * GELU; 'none' is the exact erf form, 'tanh' the approximation. The exact form of CPU float32/float64/bfloat16
 * tensors runs the fused kernel (native/kernels/gelu.cc: a vectorised erf, where ATen 1.13's runs at a scalar rate).
 */
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  if (approximate === 'none' && fusable([x])) return aten('reptok::gelu', x);
  return aten('aten::gelu', x, approximate);
}

/** SwiGLU's gate: h (…, 2F) split into halves [a, g] along the last dim -> a · silu(g) (…, F). */
export function swiglu(h: Tensor): Tensor {
  if (fusable([h])) return aten('reptok::swiglu', h);
  return tidy(() => {
    const [a, g] = h.chunk(2, -1) as [Tensor, Tensor];
    return a.mul(silu(g));
  });
}

/**
 * The MLP-Mixer's token-mixing MLP along the token axis of x (B, L, dim): W2 · gelu(W1 · x + b1) + b2 with the exact
 * (erf) GELU, w1 (Lh, L), b1 (Lh), w2 (L, Lh), b2 (L) -> (B, L, dim). The fused kernel reads x in place and keeps the
 * hidden rows (B, Lh, dim) in cache, chunk by chunk of dim; the composite moves the token axis last, so that both
 * products are GEMMs over all positions (K = L and Lh), and back. bfloat16 x (with float32 parameters, as autocast
 * keeps them) is computed in float32 and returned in bf16; under autocast a float32 x (the generator's LayerNorm
 * output) stays float32: products with K = 3 and 9 have nothing to gain from bf16.
 */
export function tokenMlp(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor): Tensor {
  if (x.ndim === 3 && fusable([x], [w1, b1, w2, b2])) return aten('reptok::token_mlp', x, w1, b1, w2, b2);
  return tidy(() => linear(gelu(linear(x.transpose(1, 2).contiguous(), w1, b1)), w2, b2).transpose(1, 2));
}

/**
 * Rotates the first 2·d dims of x (…, e) by θ given as cos θ, sin θ (…, d):
 * (x₁, x₂) -> (x₁ cos − x₂ sin, x₂ cos + x₁ sin).
 */
export function applyRotary(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  const d = cos.shape[cos.ndim - 1]!;
  return tidy(() => {
    const [x1, x2, rest] = [x.narrow(-1, 0, d), x.narrow(-1, d, d), x.narrow(-1, 2 * d, x.shape[x.ndim - 1]! - 2 * d)];
    return cat([x1.mul(cos).sub(x2.mul(sin)), x2.mul(cos).add(x1.mul(sin)), rest], -1);
  });
}

/**
 * Queries and keys of cosine attention with RoPE, from the fused projection qkv (B, L, 3, H, e): each head vector
 * unit-normalised and scaled by √scale_h (so q·k = scale_h · cos(q, k)), then rotated by θ (cos, sin: (B, H, L, d)
 * for the fused kernel; shapes that broadcast to it run the composite). Returns q, k as (B, H, L, e).
 */
export function cosineRopeQK(qkv: Tensor, scale: Tensor, cos: Tensor, sin: Tensor): [Tensor, Tensor] {
  const [B, L, , H] = qkv.shape as number[];
  const full = cos.ndim === 4 && [B, H, L].every((n, i) => cos.shape[i] === n) && sin.shape.join() === cos.shape.join();
  if (qkv.ndim === 5 && full && fusable([qkv], [scale, cos, sin]))
    return aten('reptok::cosine_rope_qk', qkv, scale, cos, sin);
  return tidy(() => {
    const s = scale.reshape(H!, 1, 1).sqrt();
    const unit = (x: Tensor): Tensor => applyRotary(x.mul(s.mul(x.square().sum(-1, true).add(1e-6).rsqrt())), cos, sin);
    const [q, k] = qkv.permute(2, 0, 3, 1, 4).unbind(0) as [Tensor, Tensor, Tensor]; // (B, H, L, e)
    return [unit(q), unit(k)];
  });
}

/**
 * softmax(q kᵀ · scale + mask) v over the last two dims, scale = 1/√e by default. `mask` is boolean
 * (true = attend) or additive (float); `isCausal` masks future positions. Unmasked (B, H, L, e) attention runs the
 * fused kernel, which reads q, k, v as the strided views they usually are and returns (B, H, Lq, e) as the
 * transpose of a contiguous (B, Lq, H, e), so `.transpose(1, 2).reshape(B, Lq, H·e)` costs no copy; everything
 * else runs the composite (libtorch 1.13 has no fused attention).
 */
export function scaledDotProductAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  o: { mask?: Tensor | null; scale?: number; isCausal?: boolean } = {},
): Tensor {
  const scale = o.scale ?? 1 / Math.sqrt(q.shape[q.ndim - 1]!);
  if (!o.mask && !o.isCausal && q.ndim === 4 && fusable([q, k, v]))
    return tidy(() => aten('reptok::attention', q, k, v, scale).transpose(1, 2));
  return tidy(() => {
    let attn = (scale === 1 ? q : q.mul(scale)).matmul(k.transpose(-2, -1)); // (..., Lq, Lk)
    if (o.isCausal) {
      const [lq, lk] = attn.shape.slice(-2) as [number, number];
      attn = attn.maskedFill(ones([lq, lk], { dtype: 'bool', device: q.device }).triu(1), -Infinity);
    }
    if (o.mask) attn = o.mask.dtype === 'bool' ? attn.maskedFill(o.mask.logicalNot(), -Infinity) : attn.add(o.mask);
    return attn.softmax(-1).matmul(v);
  });
}
