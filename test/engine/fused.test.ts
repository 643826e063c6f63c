// The fused kernels (native/kernels/: rmsNorm, swiglu, gelu, tokenMlp, cosineRopeQK, attention) and the oneDNN linear
// (native/kernels/linear.cc) against the ATen ops they replace: forward and every gradient in float32 and bfloat16,
// finite differences in float64, bad inputs, and the double-backward refusal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

import {
  F,
  Generator,
  Tensor,
  aten,
  autocast,
  cat,
  grad,
  ones,
  profile,
  rand,
  randn,
  runtimeInfo,
  setAttentionBf16Dot,
  setFusedKernels,
  setNumThreads,
  getNumThreads,
  tensor,
  tidy,
} from '../../src/index.ts';
import { assertClose, gradcheck, onednnAbsent } from '../helpers.ts';

const g = new Generator({ seed: 7 });
const r = (s: number[], dtype: 'float32' | 'float64' = 'float32'): Tensor => randn(s, { dtype, generator: g });

/** Output and gradients of `fn` w.r.t. `inputs`, with fused kernels on or off (gOut cast to the output's dtype). */
function run(fused: boolean, fn: (...x: Tensor[]) => Tensor, inputs: Tensor[], gOut: Tensor): Tensor[] {
  const previous = setFusedKernels(fused);
  try {
    return tidy(() => {
      const xs = inputs.map((x) => x.detach().requiresGrad_(true));
      const y = fn(...xs);
      return [y.detach(), ...(grad([y], xs, { gradOutputs: [gOut.to(y.dtype)] }) as Tensor[])];
    });
  } finally {
    setFusedKernels(previous);
  }
}

const float32Tol = { atol: 2e-5, rtol: 1e-4 };

function compare(
  name: string,
  fn: (...x: Tensor[]) => Tensor,
  inputs: Tensor[],
  outShape: number[],
  tol = float32Tol,
): void {
  const gOut = r(outShape, inputs[0]!.dtype as 'float32' | 'float64');
  const fused = run(true, fn, inputs, gOut);
  const composite = run(false, fn, inputs, gOut);
  fused.forEach((t, i) => assertClose(t, composite[i]!, tol, `${name}: ${i ? `gradient ${i}` : 'output'}`));
}

// cosineRopeQK returns (q, k); one tensor for the checks: q + 2k, so both gradients flow
const qk = (qkv: Tensor, s: Tensor, cos: Tensor, sin: Tensor): Tensor => {
  const [q, k] = F.cosineRopeQK(qkv, s, cos, sin);
  return q.add(k.mul(2));
};
const theta = (B: number, H: number, L: number, d: number, dtype: 'float32' | 'float64' = 'float32') => {
  const t = r([B, H, L, d], dtype).mul(3);
  return [t.cos(), t.sin()];
};

test('rmsNorm: fused = composite, shared scale (W) and per-sample scale (B, 1, W)', () => {
  compare('rmsNorm (W)', (x, s) => F.rmsNorm(x, s), [r([3, 5, 16]), r([16])], [3, 5, 16]);
  compare('rmsNorm (B,1,W)', (x, s) => F.rmsNorm(x, s, 1e-6), [r([3, 5, 16]), r([3, 1, 16])], [3, 5, 16]);
  compare('rmsNorm, 2-D x', (x, s) => F.rmsNorm(x, s), [r([7, 130]), r([130])], [7, 130]);
  compare(
    'rmsNorm, elementwise scale (composite on both sides)',
    (x, s) => F.rmsNorm(x, s),
    [r([2, 3, 8]), r([2, 3, 8])],
    [2, 3, 8],
  );
});

test('swiglu: fused = composite, including large gates (the fast exp saturates cleanly)', () => {
  compare('swiglu', (h) => F.swiglu(h), [r([3, 5, 2 * 37])], [3, 5, 37]);
  compare('swiglu, large values', (h) => F.swiglu(h), [r([4, 2 * 64]).mul(40)], [4, 64]);
});

// x (B, L, D), w1 (Lh, L), b1 (Lh), w2 (L, Lh), b2 (L) for the token-mixing MLP; weights scaled so that the hidden
// values spread over GELU's curved part and, with `spread`, reach the tails (|h| > 4√2: erf(h/√2) is ±1 in float32)
test('gelu: fused = composite (exact erf form) over the whole range, its tails included; tanh form composite', () => {
  compare('gelu', (x) => F.gelu(x), [r([3, 5, 37])], [3, 5, 37]);
  compare('gelu, large values', (x) => F.gelu(x), [r([4, 64]).mul(8)], [4, 64]);
  compare('gelu, 2^16 + 3 elements (several tasks)', (x) => F.gelu(x), [r([65539])], [65539]);
  compare('gelu, strided input', (x) => F.gelu(x.transpose(0, 1)), [r([6, 9])], [9, 6]);
  const x = r([5, 7]);
  const { ops } = profile(() => tidy(() => void F.gelu(x, 'tanh')));
  assert.ok(!ops.some((o) => o.name === 'reptok::gelu'), "'tanh' runs ATen's approximation");
});

const tokenMlpInputs = (
  B: number,
  L: number,
  Lh: number,
  D: number,
  dtype: 'float32' | 'float64',
  spread = 1,
): [Tensor, Tensor, Tensor, Tensor, Tensor] => [
  r([B, L, D], dtype),
  r([Lh, L], dtype).mul(spread / Math.sqrt(L)),
  r([Lh], dtype).mul(0.5),
  r([L, Lh], dtype).mul(1 / Math.sqrt(Lh)),
  r([L], dtype),
];
const tokenMlp = (x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor): Tensor => F.tokenMlp(x, w1, b1, w2, b2);

test('tokenMlp: fused = composite in float32 and float64, 3 tokens and 3 + 4 extra, random widths', () => {
  // float32: the fused GELU's erf is a rational fit within 4e-7 (ATen's, another within 1.5e-7) and the weight
  // gradients sum B·D products in another order; float64 runs libm's erf on both paths: rounding only
  const tols = { float32: float32Tol, float64: { atol: 1e-10, rtol: 1e-9 } };
  const size = (lo: number, hi: number): number => lo + Math.floor(rand([1], { generator: g }).item() * (hi - lo));
  for (const dtype of ['float32', 'float64'] as const)
    for (const [L, Lh] of [
      [3, 9],
      [7, 21],
      [3, 6],
    ] as const) {
      const [B, D] = [size(1, 5), size(1, 700)];
      const name = `tokenMlp ${dtype}, B ${B}, L ${L}, Lh ${Lh}, D ${D}`;
      compare(name, tokenMlp, tokenMlpInputs(B, L, Lh, D, dtype), [B, L, D], tols[dtype]);
    }
  compare('tokenMlp, GELU tails', tokenMlp, tokenMlpInputs(2, 3, 9, 64, 'float32', 8), [2, 3, 64]);
});

test('tokenMlp: x read in place when its rows are strided, copied when its last dim is not contiguous', () => {
  const [, w1, b1, w2, b2] = tokenMlpInputs(1, 3, 9, 1, 'float32');
  compare(
    'tokenMlp, x a slice of wider rows',
    (x) => tokenMlp(x.narrow(2, 5, 40), w1, b1, w2, b2),
    [r([2, 3, 50])],
    [2, 3, 40],
  );
  compare('tokenMlp, x transposed', (x) => tokenMlp(x.transpose(1, 2), w1, b1, w2, b2), [r([2, 40, 3])], [2, 3, 40]);
});

test('tokenMlp: weight gradients are the same bits at 1 and 2 threads (per-task sums, added in task order)', (t) => {
  if (availableParallelism() < 2) return t.skip('one core: no second thread count to compare');
  const inputs = tokenMlpInputs(4, 3, 9, 700, 'float32');
  const gOut = r([4, 3, 700]);
  const threads = getNumThreads();
  const at = (n: number): Tensor[] => {
    setNumThreads(n);
    try {
      return run(true, tokenMlp, inputs, gOut);
    } finally {
      setNumThreads(threads);
    }
  };
  const [one, two] = [at(1), at(2)];
  one.forEach((x, i) =>
    assert.ok(x.equal(two[i]!), `${i ? `gradient ${i}` : 'output'} differs between 1 and 2 threads`),
  );
});

test('tokenMlp under bf16 autocast: float32 inputs run the fused kernel in float32', () => {
  const inputs = tokenMlpInputs(2, 3, 9, 16, 'float32');
  const { ops, result } = profile(() => autocast(() => tidy(() => tokenMlp(...inputs).dtype)));
  assert.equal(result, 'float32');
  assert.ok(
    ops.some((o) => o.name.startsWith('reptok::token_mlp')),
    `profile lists ${ops.map((o) => o.name).join(', ')}`,
  );
});

test('cosineRopeQK: fused = composite (q, k, d·2 < e and d·2 = e)', () => {
  const [c, s] = theta(2, 3, 5, 4);
  compare(
    'cosineRopeQK',
    (qkv, sc) => qk(qkv, sc, c!, s!),
    [r([2, 5, 3, 3, 16]), rand([3], { generator: g }).mul(10).add(0.5)],
    [2, 3, 5, 16],
  );
  const [c2, s2] = theta(1, 2, 4, 8);
  compare(
    'cosineRopeQK full rotation',
    (qkv, sc) => qk(qkv, sc, c2!, s2!),
    [r([1, 4, 3, 2, 16]), rand([2], { generator: g }).add(1)],
    [1, 2, 4, 16],
  );
});

// q, k, v as the strided views of a qkv projection that the models pass (B, L, 3, H, e) -> 3 × (B, H, L, e)
const qkvViews = (qkv: Tensor): Tensor[] => qkv.permute(2, 0, 3, 1, 4).unbind(0);

test('attention: fused = composite for strided q, k, v views, cross-attention lengths, odd head dims', () => {
  const sdpa = (scale?: number) => (qkv: Tensor) => {
    const [q, k, v] = qkvViews(qkv) as [Tensor, Tensor, Tensor];
    return F.scaledDotProductAttention(q, k, v, { scale });
  };
  compare('attention (views of qkv)', sdpa(), [r([2, 21, 3, 3, 16])], [2, 3, 21, 16]);
  compare('attention, scale 1, 65 tokens (the vector tails)', sdpa(1), [r([1, 65, 3, 2, 24]).mul(0.5)], [1, 2, 65, 24]);
  compare(
    'attention, Lq ≠ Lk, e = 5',
    (q, k, v) => F.scaledDotProductAttention(q, k, v),
    [r([2, 2, 3, 5]), r([2, 2, 9, 5]), r([2, 2, 9, 5])],
    [2, 2, 3, 5],
  );
  compare(
    'attention, large logits (softmax stays finite)',
    (q, k, v) => F.scaledDotProductAttention(q, k, v, { scale: 30 }),
    [r([1, 1, 4, 8]), r([1, 1, 6, 8]), r([1, 1, 6, 8])],
    [1, 1, 4, 8],
  );
});

// ---------------------------------------------------------------------------------------------------------------
// bfloat16: the activations a linear outputs under autocast, next to float32 parameters (RMSNorm's scale, the RoPE
// tables, the cosine-attention scale) or bfloat16 ones (AdaRMSNorm's scale comes out of a linear). The kernels widen
// bf16 on load, compute in float32 and round once on store; outputs take the activations' dtype, each gradient its
// input's. Two references on the same values:
// - the float32 fused path on the inputs widened to float32 runs the same float32 arithmetic, so every bf16 output and
//   gradient element must be that result rounded to nearest: |Δ| ≤ 2⁻⁸·|ref| elementwise (bf16 keeps 8 significant
//   bits; half an ulp is 2⁻⁸ relative at worst). Measured: up to 0.996·2⁻⁸; 0 for float32 scale gradients.
// - the composite path on the same bf16 inputs rounds every intermediate (x², the mean, rsqrt, each product, softmax,
//   both attention matmuls) to bf16, so it is a few roundings off, relative to the output's magnitude rather than
//   elementwise (a rounded sum can cancel to near 0): max|Δ| ≤ 4·2⁻⁸·max|ref|. Measured up to 2.75·2⁻⁸; the
//   reductions accumulate in float32 on both paths, so the error does not grow with their length.
// ---------------------------------------------------------------------------------------------------------------

const bf16 = (t: Tensor): Tensor => t.to('bfloat16');
const BF16_ROUNDING = 2 ** -8;
const BF16_COMPOSITE = 4 * 2 ** -8;

function assertNearMax(actual: Tensor, expected: Tensor, tol: number, what: string): void {
  tidy(() => {
    const err = actual.to('float64').sub(expected.to('float64')).abs().max().item();
    const scale = expected.to('float64').abs().max().item();
    assert.ok(err <= tol * scale, `${what}: max |diff| ${err.toExponential(3)} > ${tol} · max |expected| ${scale}`);
  });
}

/**
 * `vsFloat32`: a bound relative to the float32 kernel's largest value, instead of the elementwise rounding bound.
 * `exactComposite`: the second reference is the composite in float64 on the same values, within this bound of its
 * largest value, instead of the bf16 composite (for kernels whose composite takes no such bf16 inputs).
 */
function compareBf16(
  name: string,
  fn: (...x: Tensor[]) => Tensor,
  inputs: Tensor[],
  outShape: number[],
  o: { vsFloat32?: number; exactComposite?: number } = {},
): void {
  const gOut = bf16(r(outShape));
  const fused = run(true, fn, inputs, gOut);
  const exact = o.exactComposite !== undefined;
  const composite = exact
    ? run(
        false,
        fn,
        inputs.map((x) => x.to('float64')),
        gOut.to('float64'),
      )
    : run(false, fn, inputs, gOut);
  const wide = run(
    true,
    fn,
    inputs.map((x) => x.to('float32')),
    gOut.to('float32'),
  );
  fused.forEach((t, i) => {
    const what = `${name}: ${i ? `gradient ${i}` : 'output'}`;
    assert.equal(t.dtype, inputs[Math.max(0, i - 1)]!.dtype, `${what}: dtype`);
    if (o.vsFloat32 === undefined) {
      assertClose(t.to('float32'), wide[i]!, { atol: 0, rtol: BF16_ROUNDING }, `${what} vs the float32 kernel`);
    } else {
      assertNearMax(t, wide[i]!, o.vsFloat32, `${what} vs the float32 kernel`);
    }
    const [tol, ref] = exact ? [o.exactComposite!, 'float64'] : [BF16_COMPOSITE, 'bf16'];
    assertNearMax(t, composite[i]!, tol, `${what} vs the ${ref} composite`);
  });
}

test('bfloat16 rmsNorm: float32 scale (RMSNorm) and bf16 per-sample scale (AdaRMSNorm), bf16 out', () => {
  compareBf16('bf16 rmsNorm, float32 (W)', (x, s) => F.rmsNorm(x, s), [bf16(r([3, 17, 64])), r([64])], [3, 17, 64]);
  compareBf16(
    'bf16 rmsNorm, bf16 (B,1,W)',
    (x, s) => F.rmsNorm(x, s),
    [bf16(r([3, 17, 64])), bf16(r([3, 1, 64]).add(1))],
    [3, 17, 64],
  );
  compareBf16('bf16 rmsNorm, 2-D, W = 130', (x, s) => F.rmsNorm(x, s), [bf16(r([7, 130])), bf16(r([130]))], [7, 130]);
});

test('bfloat16 swiglu: bf16 in and out, large gates included', () => {
  compareBf16('bf16 swiglu', (h) => F.swiglu(h), [bf16(r([3, 5, 2 * 37]))], [3, 5, 37]);
  compareBf16('bf16 swiglu, large values', (h) => F.swiglu(h), [bf16(r([4, 2 * 64]).mul(40))], [4, 64]);
});

test('bfloat16 gelu: bf16 in and out', () => {
  compareBf16('bf16 gelu', (x) => F.gelu(x), [bf16(r([3, 5, 37]).mul(3))], [3, 5, 37]);
});

test('bfloat16 cosineRopeQK: bf16 qkv with float32 scale and RoPE tables -> bf16 q, k', () => {
  // q and k side by side (a sum would round once more in bf16): [q, k] (B, H, L, 2e)
  const qAndK = (cos: Tensor, sin: Tensor) => (qkv: Tensor, sc: Tensor) => cat(F.cosineRopeQK(qkv, sc, cos, sin), -1);
  const [c, s] = theta(2, 3, 17, 4);
  compareBf16(
    'bf16 cosineRopeQK',
    qAndK(c!, s!),
    [bf16(r([2, 17, 3, 3, 16])), rand([3], { generator: g }).mul(10).add(0.5)],
    [2, 3, 17, 32],
  );
  const [c2, s2] = theta(1, 2, 4, 8);
  compareBf16(
    'bf16 cosineRopeQK full rotation',
    qAndK(c2!, s2!),
    [bf16(r([1, 4, 3, 2, 16])), rand([2], { generator: g }).add(1)],
    [1, 2, 4, 32],
  );
});

// bf16 attention has two paths (native/kernels/attention.cc): on AVX512-BF16, vdpbf16ps multiplies bf16 operands —
// q, k, v, dO as stored, and the float32 probabilities P and softmax gradient dS rounded to bf16 as the operands of
// P·v, Pᵀ·dO, dS·k and dSᵀ·q, as the composite's bf16 bmm does; elsewhere (and switched off) the operands are widened
// and every product runs in float32, which the elementwise bound above covers. Rounding P or dS adds up to
// 2⁻⁹·Σ|P||v| (resp. Σ|dS||k|) to an element: bounded by the operands' magnitudes, not by the element's own (a
// near-cancelling output is off by far more than 2⁻⁸ of itself), so the vdpbf16ps path is held to the float32 kernel
// relative to the largest value: its own rounding (2⁻⁹) plus the operands' (≤ 2⁻⁹ · max|v| ≈ max|out| here, the
// outputs being averages of v rows), 2·2⁻⁸ — an estimate, not a bound: measured up to 0.8·2⁻⁸ on these cases, 1.07·2⁻⁸
// at the tokenizer's (8, 6, 69, 64), 1.6·2⁻⁸ on dK of a 1-query, 5-key, e = 2 head. Against the composite:
// BF16_COMPOSITE as before (measured up to 2.4·2⁻⁸). The two paths agree within the sum of their bounds to the
// float32 kernel, 3·2⁻⁸ (measured up to 1.5·2⁻⁸).
const BF16_OPERANDS = 2 * 2 ** -8;
const BF16_PATHS = BF16_OPERANDS + BF16_ROUNDING;
const attentionDotDefault = runtimeInfo().attentionBf16 === 'avx512_bf16';

/** Runs `fn` with bf16 attention's products on vdpbf16ps or widened; `dot`: whether vdpbf16ps was in use. */
function attentionPath<R>(dot: boolean, fn: (dot: boolean) => R): R {
  try {
    return fn(setAttentionBf16Dot(dot));
  } finally {
    setAttentionBf16Dot(attentionDotDefault);
  }
}

const bf16AttentionCases = (): [string, (...x: Tensor[]) => Tensor, Tensor[], number[]][] => {
  const sdpa = (qkv: Tensor) => {
    const [q, k, v] = qkvViews(qkv) as [Tensor, Tensor, Tensor];
    return F.scaledDotProductAttention(q, k, v);
  };
  const cross = (q: Tensor, k: Tensor, v: Tensor) => F.scaledDotProductAttention(q, k, v);
  return [
    ['bf16 attention (views of qkv), L = 21', sdpa, [bf16(r([2, 21, 3, 3, 16]))], [2, 3, 21, 16]],
    ['bf16 attention, 130 tokens, e = 64', sdpa, [bf16(r([1, 130, 3, 2, 64]))], [1, 2, 130, 64]],
    ['bf16 attention, 69 tokens, e = 7 (views)', sdpa, [bf16(r([2, 69, 3, 2, 7]))], [2, 2, 69, 7]],
    [
      'bf16 attention, Lq ≠ Lk, e = 5',
      cross,
      [bf16(r([2, 2, 3, 5])), bf16(r([2, 2, 9, 5])), bf16(r([2, 2, 9, 5]))],
      [2, 2, 3, 5],
    ],
  ];
};

test('bfloat16 attention: bf16 q, k, v views, long and cross-attention lengths, odd e and L (both paths)', () => {
  for (const [name, fn, inputs, outShape] of bf16AttentionCases()) {
    attentionPath(false, () => compareBf16(`${name}, widened`, fn, inputs, outShape));
    attentionPath(true, (dot) =>
      compareBf16(`${name}, ${dot ? 'vdpbf16ps' : 'widened'}`, fn, inputs, outShape, {
        vsFloat32: dot ? BF16_OPERANDS : undefined,
      }),
    );
  }
});

test('bfloat16 attention: vdpbf16ps and widened products agree within bf16 rounding, forward and gradients', (t) => {
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : null;
  for (const [name, fn, inputs, outShape] of bf16AttentionCases()) {
    const gOut = bf16(r(outShape));
    const widened = attentionPath(false, (dot) => {
      assert.equal(dot, false, 'the widened path cannot be selected');
      return run(true, fn, inputs, gOut);
    });
    const [dotted, dot] = attentionPath(true, (dot) => [run(true, fn, inputs, gOut), dot] as const);
    assert.equal(dot, attentionDotDefault, 'vdpbf16ps is used by default exactly where the CPU has it');
    if (cpuinfo)
      assert.equal(dot, /\bavx512_bf16\b/.test(cpuinfo), 'vdpbf16ps is used iff /proc/cpuinfo lists avx512_bf16');
    dotted.forEach((x, i) => {
      const what = `${name}: ${i ? `gradient ${i}` : 'output'}`;
      if (dot) assertNearMax(x, widened[i]!, BF16_PATHS, `${what}, vdpbf16ps vs widened`);
      else assert.ok(x.equal(widened[i]!), `${what}: without AVX512-BF16 both runs take the widened path`);
    });
    // the switch must change the arithmetic (P rounded to bf16 shows in the output)
    if (dot) assert.ok(!dotted[0]!.equal(widened[0]!), `${name}: vdpbf16ps and widened outputs are identical`);
    // without a graph the forward keeps no probabilities (its own scratch instead): the same output
    const inference = attentionPath(true, () => tidy(() => fn(...inputs)));
    assert.ok(inference.equal(dotted[0]!), `${name}: the output without a graph differs`);
  }
  t.diagnostic(
    `bf16 attention products: ${attentionDotDefault ? 'vdpbf16ps and widened' : 'widened only (no AVX512-BF16)'}`,
  );
});

// The composite takes no bf16 x next to float32 weights outside autocast (aten::linear wants one dtype), so the
// second reference is exact: the composite in float64 on the same values, which the bf16 result must match within
// its one rounding (2⁻⁸ of the largest value) plus the float32 arithmetic's.
test('bfloat16 tokenMlp: bf16 x, float32 weights -> bf16 out, float32 weight gradients (3 and 3 + 4 tokens)', () => {
  for (const [L, Lh, D] of [
    [3, 9, 300],
    [7, 21, 37],
  ] as const) {
    const [x, ...params] = tokenMlpInputs(2, L, Lh, D, 'float32');
    compareBf16(`bf16 tokenMlp, L ${L}`, tokenMlp, [bf16(x), ...params], [2, L, D], {
      exactComposite: 2 * BF16_ROUNDING,
    });
  }
});

test('bfloat16 stores round to nearest even, bit for bit as ATen casts (ties, NaN, ±inf, overflow, subnormals)', () =>
  tidy(() => {
    // rmsNorm of a row of ones with eps 0 multiplies the float32 scale by exactly 1, so y is the scale rounded once
    const ulp = 2 ** -7; // bf16's spacing in [1, 2)
    const values = [
      1 + ulp / 2, // a tie: to 1 (even)
      1 + (3 * ulp) / 2, // a tie: up to 1 + 2·ulp (even)
      -(1 + ulp / 2),
      1 + ulp / 2 + 2 ** -20, // just above a tie: up
      3.4028234663852886e38, // the largest float32: rounds to +inf
      Infinity,
      -Infinity,
      NaN,
      1e-40, // float32 subnormal
      -0,
      ...Array.from({ length: 54 }, (_, i) => Math.sin(i * 12.9898) * 10 ** ((i % 9) - 4)),
    ];
    const scale = tensor(values);
    const y = F.rmsNorm(bf16(ones([1, values.length])), scale, 0).reshape(values.length);
    const [got, want] = [y, bf16(scale)].map((t) => t.to('float32').toArray() as number[]) as [number[], number[]];
    values.forEach((v, i) => assert.ok(Object.is(got[i], want[i]), `${v}: got ${got[i]}, ATen's cast ${want[i]}`));
  }));

test('bfloat16 runs the fused kernels; dtype mixes they do not take are clear errors (and composite in F)', () => {
  const x = bf16(r([2, 4, 8]));
  const qkv = bf16(r([1, 3, 3, 2, 8]));
  const [c, s] = theta(1, 2, 3, 2);
  const { ops } = profile(() =>
    tidy(() => {
      const [q, k] = F.cosineRopeQK(qkv, r([2]).abs(), c!, s!);
      void [F.rmsNorm(x, r([8])), F.swiglu(x), F.scaledDotProductAttention(q, k, qkvViews(qkv)[2]!)];
    }),
  );
  for (const op of ['reptok::rms_norm', 'reptok::swiglu', 'reptok::cosine_rope_qk', 'reptok::attention'])
    assert.ok(
      ops.some((o) => o.name.startsWith(op)),
      `profile lists ${ops.map((o) => o.name).join(', ')}`,
    );
  const q = r([1, 2, 3, 4]);
  assert.throws(
    () => aten('reptok::attention', q, bf16(q), q, 1),
    /reptok::attention: q, k, v must share dtype and device, got q Float, k BFloat16, v Float/,
  );
  assert.throws(
    () => aten('reptok::rms_norm', r([2, 8]), bf16(r([8])), 1e-6),
    /reptok::rms_norm: scale must be a CPU tensor of x's dtype Float, got BFloat16/,
  );
  assert.throws(
    () => aten('reptok::cosine_rope_qk', qkv, r([2]), bf16(c!), bf16(s!)),
    /reptok::cosine_rope_qk: scale, cos and sin must be CPU Float tensors for BFloat16 qkv, got BFloat16/,
  );
  assert.throws(
    () => aten('reptok::token_mlp', ...tokenMlpInputs(1, 3, 9, 8, 'float32').map(bf16)),
    /reptok::token_mlp: weights and biases must be Float CPU tensors for BFloat16 x, got BFloat16/,
  );
  // under autocast, a float32 q and k next to a bf16 v (the composite q/k path's output) run the composite
  const [qf, kf] = [r([1, 2, 3, 4]), r([1, 2, 3, 4])];
  assert.equal(
    autocast(() => tidy(() => F.scaledDotProductAttention(qf, kf, bf16(r([1, 2, 3, 4]))).dtype)),
    'bfloat16',
  );
});

// The one optional capability: without a shared oneDNN, F.linear is aten::linear and there is nothing to compare.
test('linear on oneDNN: = aten::linear (bias or not, any leading dims, transposed weights); a reptok:: op', (t) => {
  if (!runtimeInfo().onednnGemm) return t.skip(onednnAbsent());
  compare('linear + bias', (x, w, b) => F.linear(x, w, b), [r([4, 9, 24]), r([40, 24]), r([40])], [4, 9, 40]);
  compare('linear, 2-D, no bias', (x, w) => F.linear(x, w), [r([7, 17]), r([16, 17])], [7, 16]);
  compare(
    'linear, weight a transposed view',
    (x, w) => F.linear(x, w.transpose(0, 1)),
    [r([2, 3, 20]), r([20, 18])],
    [2, 3, 18],
  );
  compare('linear, one row', (x, w, b) => F.linear(x, w, b), [r([1, 16]), r([24, 16]), r([24])], [1, 24]);
  const x = r([3, 16]);
  const bf16 = autocast(() => tidy(() => F.linear(x, r([16, 16])).dtype));
  assert.equal(bf16, 'bfloat16', 'under autocast the linear runs in bfloat16');
  const { ops } = profile(() => tidy(() => void F.linear(r([2, 16]), r([16, 16]))));
  assert.ok(
    ops.some((o) => o.name.startsWith('reptok::linear')),
    `profile lists ${ops.map((o) => o.name).join(', ')}`,
  );
  assert.throws(
    () => aten('reptok::linear', r([2, 5]), r([3, 4]), null),
    /reptok::linear: x \[2, 5\] does not match weight \[3, 4\] \(out, in\)/,
  );
  assert.throws(
    () => aten('reptok::linear', r([2, 4], 'float64'), r([3, 4], 'float64'), null),
    /inputs must be float32 or bfloat16 CPU tensors/,
  );
});

test('fused kernels: float64 finite-difference gradients', () => {
  gradcheck(
    (q, k, v) => F.scaledDotProductAttention(q, k, v, { scale: 0.7 }),
    [r([1, 2, 3, 4], 'float64'), r([1, 2, 5, 4], 'float64'), r([1, 2, 5, 4], 'float64')],
    { what: 'attention' },
  );
  gradcheck((x, s) => F.rmsNorm(x, s), [r([2, 3, 6], 'float64'), r([2, 1, 6], 'float64')], { what: 'rmsNorm' });
  gradcheck((h) => F.swiglu(h), [r([2, 3, 10], 'float64')], { what: 'swiglu' });
  gradcheck((x) => F.gelu(x), [r([2, 3, 10], 'float64').mul(2)], { what: 'gelu' });
  gradcheck(tokenMlp, tokenMlpInputs(2, 3, 9, 5, 'float64'), { what: 'tokenMlp' });
  const [c, s] = theta(1, 2, 3, 2, 'float64');
  gradcheck(
    (qkv, sc) => qk(qkv, sc, c!, s!),
    [r([1, 3, 3, 2, 8], 'float64'), rand([2], { dtype: 'float64', generator: g }).add(1)],
    { what: 'cosineRopeQK' },
  );
});

test('fused kernels run as reptok:: operators (visible to the profiler)', () => {
  const x = r([2, 4, 8]);
  const q = r([1, 2, 3, 4]);
  const { ops } = profile(() =>
    tidy(
      () =>
        void [
          F.rmsNorm(x, r([8])),
          F.scaledDotProductAttention(q, q, q),
          tokenMlp(...tokenMlpInputs(2, 3, 9, 8, 'float32')),
          F.gelu(x),
        ],
    ),
  );
  for (const op of ['reptok::rms_norm', 'reptok::attention', 'reptok::token_mlp', 'reptok::gelu'])
    assert.ok(
      ops.some((o) => o.name.startsWith(op)),
      `profile lists ${ops.map((o) => o.name).join(', ')}`,
    );
});

test('fused kernels: bad shapes are clear errors; double backward is refused', () => {
  assert.throws(
    () => aten('reptok::rms_norm', r([2, 8]), r([4]), 1e-6),
    /reptok::rms_norm: scale \[4\] does not match the last dim of x \[2, 8\]/,
  );
  assert.throws(
    () => aten('reptok::rms_norm', r([2, 3, 8]), r([2, 3, 8]), 1e-6),
    /scale \[2, 3, 8\] must be \(W\) or \(B, 1, \.\.\., W\)/,
  );
  assert.throws(() => F.swiglu(r([2, 7])), /reptok::swiglu: the last dim of h must be even/);
  assert.throws(
    () => aten('reptok::token_mlp', r([2, 3, 8]), r([9, 4]), r([9]), r([3, 9]), r([3])),
    /reptok::token_mlp: w1 \[9, 4\] and b1 \[9\] must be \(Lh, L\) and \(Lh\) for x \[2, 3, 8\]/,
  );
  assert.throws(
    () => aten('reptok::token_mlp', r([2, 3, 8]), r([9, 3]), r([9]), r([9, 3]), r([3])),
    /w2 \[9, 3\] and b2 \[3\] must be \(L, Lh\) = \(3, 9\) and \(L\)/,
  );
  assert.throws(
    () => aten('reptok::cosine_rope_qk', r([2, 5, 16]), r([3]), r([2, 3, 5, 4]), r([2, 3, 5, 4])),
    /qkv must be \(B, L, 3, H, e\)/,
  );
  assert.throws(
    () => aten('reptok::attention', r([2, 3, 4]), r([2, 3, 4]), r([2, 3, 4]), 1),
    /reptok::attention: q, k, v must be \(B, H, L, e\)/,
  );
  assert.throws(
    () => aten('reptok::attention', r([1, 2, 3, 4]), r([1, 2, 5, 4]), r([1, 2, 6, 4]), 1),
    /k and v must be \(B, H, Lk, e\)/,
  );
  tidy(() => {
    const x = r([2, 8]).requiresGrad_(true);
    assert.throws(
      () =>
        grad(
          [
            F.rmsNorm(x, r([8]))
              .square()
              .sum(),
          ],
          [x],
          { createGraph: true },
        ),
      /no double backward/,
    );
    const q = r([1, 1, 3, 4]).requiresGrad_(true);
    assert.throws(
      () => grad([F.scaledDotProductAttention(q, q, q).square().sum()], [q], { createGraph: true }),
      /reptok::attention: the fused kernel has no double backward/,
    );
  });
});
