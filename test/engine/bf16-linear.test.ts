// The bfloat16 linear layer (native/kernels/linear.cc): bf16 operands, float32 accumulation, float32 weight gradients.
// Layers with a backward pass to come run on oneDNN's gemm_bf16bf16f32 with the weight's bf16 copy cached per
// parameter version; forward-only calls (noGrad, inference) on oneDNN matmul primitives over a copy packed once per
// version (native/kernels/onednn.cc), which add the bias and round in registers. The copy-follows-updates test below
// runs both: its checks are forward-only, its AdamW step is not.
//
// Tolerances: on inputs already rounded to bf16, every product is exact in float32 and only the order of the float32
// sums differs from a float32 GEMM (relative ~K·2⁻²⁴, K ≤ 64 here: 1e-5 covers it); a result returned in bf16 is
// then rounded once more (relative 2⁻⁹ = 0.002, round to nearest). Against a plain float32 layer on unrounded
// inputs, x and w each carry a bf16 rounding (2⁻⁹ relative per element), and a sum of K such products has a
// relative error about 2⁻⁹·√K / (cancellation); 0.02 of the output's scale bounds it with margin at K = 64.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  F,
  Generator,
  Tensor,
  aten,
  autocast,
  bf16Support,
  grad,
  noGrad,
  profile,
  randn,
  runtimeInfo,
  tidy,
} from '../../src/index.ts';
import { AdamW } from '../../src/optim/index.ts';
import { PACKED_LINEAR_CASES, assertClose, onednnAbsent } from '../helpers.ts';

const g = new Generator({ seed: 11 });
const r = (s: number[]): Tensor => randn(s, { generator: g });
/** `t` rounded to bfloat16 and back: values a bf16 GEMM reads exactly. */
const bf = (t: Tensor): Tensor => t.to('bfloat16').float();

function needsOnednn(t: { skip(why: string): void }): boolean {
  if (runtimeInfo().onednnGemm && bf16Support().gemm) return true;
  t.skip(onednnAbsent());
  return false;
}

/** y and the gradients of (x, w, b) for a linear layer computed by `fn`, with output gradient gy. */
function linearGrads(fn: (x: Tensor, w: Tensor, b: Tensor) => Tensor, x: Tensor, w: Tensor, b: Tensor, gy: Tensor) {
  return tidy(() => {
    const xs = [x, w, b].map((t) => t.detach().requiresGrad_(true)) as [Tensor, Tensor, Tensor];
    const y = fn(...xs);
    const [gx, gw, gb] = grad([y], xs, { gradOutputs: [gy.to(y.dtype)] }) as [Tensor, Tensor, Tensor];
    return { y: y.detach(), gx, gw, gb };
  });
}

test('bf16 linear under autocast: bf16 products with float32 accumulation; float32 weight and bias gradients', (t) => {
  if (!needsOnednn(t)) return;
  tidy(() => {
    const [x, w, b, gy] = [bf(r([4, 5, 64])), bf(r([48, 64])), r([48]), bf(r([4, 5, 48]))];
    const ours = linearGrads((x, w, b) => autocast(() => F.linear(x, w, b)), x, w, b, gy);
    assert.equal(ours.y.dtype, 'bfloat16', 'a linear layer under autocast returns bfloat16');
    assert.deepEqual([ours.gx.dtype, ours.gw.dtype, ours.gb.dtype], ['float32', 'float32', 'float32']);
    // the same values in float32: the output differs by its one bf16 rounding, the gradients only in summation order
    const ref = linearGrads((x, w, b) => F.linear(x, w, b), x, w, b, gy);
    assertClose(ours.y.float(), ref.y, { atol: 1e-5, rtol: 2 ** -8 }, 'y');
    assertClose(ours.gx, bf(ref.gx), { atol: 1e-5, rtol: 2 ** -8 }, 'gx (rounded to bf16 as an activation gradient)');
    assertClose(ours.gw, ref.gw, { atol: 1e-5, rtol: 1e-5 }, 'gw (float32 out of the GEMM)');
    assertClose(ours.gb, ref.gb, { atol: 1e-5, rtol: 1e-5 }, 'gb');
    // and against a float32 layer on unrounded inputs: within bf16's precision
    const [x32, w32] = [r([6, 64]), r([32, 64])];
    const y16 = autocast(() => F.linear(x32, w32)).float();
    const y32 = F.linear(x32, w32);
    const scale = y32.abs().max().item();
    assert.ok(y16.sub(y32).abs().max().item() < 0.02 * scale, 'bf16 vs float32 within 2% of the output scale');
  });
});

test('bf16 linear: = autocast aten::linear within bf16 rounding; a reptok:: op in the profile', (t) => {
  if (!needsOnednn(t)) return;
  tidy(() => {
    const [x, w, b, gy] = [r([3, 7, 32]), r([24, 32]), r([24]), r([3, 7, 24])];
    const ours = linearGrads((x, w, b) => autocast(() => F.linear(x, w, b)), x, w, b, gy);
    const aten_ = linearGrads((x, w, b) => autocast(() => aten('aten::linear', x, w, b)), x, w, b, gy);
    const tol = { atol: 0.02, rtol: 0.02 };
    for (const k of ['y', 'gx', 'gw', 'gb'] as const)
      assertClose(ours[k].float(), aten_[k].float(), tol, `${k}: reptok::linear vs autocast aten::linear`);
    const { ops } = profile(() => tidy(() => void autocast(() => F.linear(x, w, b))));
    assert.ok(
      ops.some((o) => o.name === 'reptok::linear') && !ops.some((o) => o.name === 'aten::addmm'),
      `the bf16 GEMM is oneDNN's, not ATen's addmm: ${ops.map((o) => o.name).join(', ')}`,
    );
  });
});

test('bf16 linear: bf16 tensors outside autocast; mixed dtypes outside autocast are an error', (t) => {
  if (!needsOnednn(t)) return;
  tidy(() => {
    const [x, w] = [bf(r([5, 32])), bf(r([16, 32]))];
    const y = F.linear(x.bfloat16(), w.bfloat16());
    assert.equal(y.dtype, 'bfloat16');
    assertClose(y.float(), F.linear(x, w), { atol: 1e-5, rtol: 2 ** -8 }, 'bf16 x and w');
    assert.throws(
      () => F.linear(x.bfloat16(), w),
      /reptok::linear: x \(BFloat16\), weight \(Float\) must have one dtype outside autocast/,
    );
  });
});

test("bf16 linear: the weight's bf16 copy follows in-place updates (copy_, AdamW's fused step)", (t) => {
  if (!needsOnednn(t)) return;
  tidy(() => {
    const w = r([16, 32]).requiresGrad_(true);
    const x = r([4, 32]);
    const y = (): Tensor => noGrad(() => autocast(() => F.linear(x, w)).float());
    const expected = (): Tensor => noGrad(() => F.linear(bf(x), bf(w)));
    const check = (what: string): void => assertClose(y(), expected(), { atol: 1e-4, rtol: 2 ** -8 }, what);
    check('first call');
    check('second call (cached copy)');
    noGrad(() => w.copy_(r([16, 32])));
    check('after copy_');
    const opt = new AdamW([w], { lr: 0.1 });
    autocast(() => F.linear(x, w))
      .float()
      .square()
      .sum()
      .backward();
    opt.step();
    check('after an AdamW step (raw writes that bump the version)');
  });
});

test('bf16 linear without a backward pass: packed matmul primitives = the GEMM path = float32 on bf16 values', (t) => {
  if (!needsOnednn(t)) return;
  if (bf16Support().matmul === null) {
    // a build without oneDNN's headers (or another oneDNN version): every layer takes the GEMM path tested above
    t.diagnostic('no bf16 matmul primitives in this build: layers without a backward pass run the GEMM path');
  }
  tidy(() => {
    for (const { M, bias, what } of PACKED_LINEAR_CASES) {
      const [x, w, b] = [bf(r([M, 64])), bf(r([48, 64])).requiresGrad_(true), bf(r([48]))];
      // under noGrad: the forward product on the weight's packed copy (it has no bf16 copy for the GEMMs yet)
      const y = noGrad(() => autocast(() => F.linear(x, w, bias ? b : undefined)));
      // the same layer with a backward pass to come: the GEMM path
      const yt = autocast(() => F.linear(x, w, bias ? b : undefined));
      // float32 on the same bf16 values: exact products, sums in another order, one rounding of y
      const ref = noGrad(() => F.linear(x, w, bias ? b : undefined));
      assert.equal(y.dtype, 'bfloat16', what);
      assertClose(y.float(), ref, { atol: 1e-5, rtol: 2 ** -8 }, `${what}: y vs float32`);
      assertClose(y.float(), yt.detach().float(), { atol: 1e-5, rtol: 2 ** -8 }, `${what}: packed vs GEMM path`);
      // now that the weight has a bf16 copy for the GEMMs, noGrad reuses it; a view of a weight is packed per call
      const yn = noGrad(() => autocast(() => F.linear(x, w, bias ? b : undefined)));
      assertClose(yn.float(), ref, { atol: 1e-5, rtol: 2 ** -8 }, `${what}: noGrad after a backward-pass forward`);
      const yv = noGrad(() => autocast(() => F.linear(x, w.narrow(0, 8, 32))));
      const refv = noGrad(() => F.linear(x, w.narrow(0, 8, 32)));
      assertClose(yv.float(), refv, { atol: 1e-5, rtol: 2 ** -8 }, `${what}: a view`);
    }
  });
});

test('bf16 support is reported by runtimeInfo', () => {
  const s = runtimeInfo().bf16;
  assert.deepEqual(s, bf16Support());
  assert.ok(s.native === null || s.native === 'amx' || s.native === 'avx512_bf16');
  if (s.native) assert.ok(s.gemm && typeof s.isa === 'string');
  // oneDNN names the implementation its bf16 matmul primitives run (brgemm on AVX512-BF16 or AMX here)
  if (s.native && s.matmul !== null) assert.match(s.matmul, /^brg/);
});
