// Op and gradient parity with PyTorch: every case of test/data/ops.safetensors (written by
// tools/reference/make_op_cases.py) is recomputed here and compared, outputs and input gradients.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';

import {
  F,
  Generator,
  Tensor,
  backward,
  cat,
  einsum,
  empty,
  manualSeed,
  normal,
  rand,
  randint,
  randn,
  randperm,
  stack,
  tidy,
  where,
  zeros,
} from '../../src/index.ts';
import { loadSafetensors } from '../../src/io/index.ts';
import { DATA, assertClose } from '../helpers.ts';

type Fn = (...x: Tensor[]) => Tensor | Tensor[];

const sdpaMask = (q: Tensor, k: Tensor, v: Tensor, m: Tensor): Tensor =>
  F.scaledDotProductAttention(q, k, v, { mask: m.gt(-0.5) });
const seeded =
  (seed: number, fn: Fn): Fn =>
  (...x) => {
    manualSeed(seed);
    return fn(...x);
  };

const CASES: Record<string, Fn> = {
  // elementwise arithmetic
  add_broadcast: (a, b) => a.add(b!),
  add_alpha: (a, b) => a.add(b!, 2),
  add_scalar: (a) => a.add(1.5),
  sub: (a, b) => a.sub(b!),
  rsub_scalar: (a) => a.rsub(2),
  mul: (a, b) => a.mul(b!),
  div: (a, b) => a.div(b!),
  div_floor: (a, b) => a.div(b!, 'floor'),
  int_mul_scalar: (a) => a.mul(3),
  int_div_true: (a) => a.div(2),
  pow_scalar: (a) => a.pow(2.5),
  pow_tensor: (a, b) => a.pow(b!),
  maximum: (a, b) => a.maximum(b!),
  minimum: (a, b) => a.minimum(b!),
  atan2: (a, b) => a.atan2(b!),
  remainder: (a) => a.remainder(1.5),
  lerp_scalar: (a, b) => a.lerp(b!, 0.3),
  lerp_tensor: (a, b, w) => a.lerp(b!, w!),
  addcmul: (a, b, c) => a.addcmul(b!, c!, 0.5),
  addcdiv: (a, b, c) => a.addcdiv(b!, c!, -2),
  clamp: (a) => a.clamp(-0.5, 0.7),
  clamp_min: (a) => a.clampMin(0.1),
  where: (c, a, b) => where(c!.gt(0), a!, b!),
  where_scalar: (c, a) => where(c!.gt(0), a!, zeros([])),
  // elementwise transcendental
  neg: (a) => a.neg(),
  abs: (a) => a.abs(),
  sqrt: (a) => a.sqrt(),
  rsqrt: (a) => a.rsqrt(),
  exp: (a) => a.exp(),
  expm1: (a) => a.expm1(),
  log: (a) => a.log(),
  log1p: (a) => a.log1p(),
  sin: (a) => a.sin(),
  cos: (a) => a.cos(),
  tanh: (a) => a.tanh(),
  sigmoid: (a) => a.sigmoid(),
  erf: (a) => a.erf(),
  reciprocal: (a) => a.reciprocal(),
  square: (a) => a.square(),
  relu: (a) => a.relu(),
  sign: (a) => a.sign(),
  floor: (a) => a.floor(),
  round: (a) => a.round(),
  erfinv: (a) => a.erfinv(),
  // comparisons and logic
  eq: (a, b) => a.eq(b!),
  lt: (a, b) => a.lt(b!),
  ge_scalar: (a) => a.ge(0.2),
  logical_and: (a, b) => a.gt(0).logicalAnd(b!.gt(0)),
  isnan: (a) => a.log().isnan(),
  // reductions
  sum_all: (a) => a.sum(),
  sum_dims_keep: (a) => a.sum([0, 2], true),
  mean_dim: (a) => a.mean(1),
  var_dim: (a) => a.var(1),
  var_correction0_keep: (a) => a.var(-1, { correction: 0, keepdim: true }),
  std_all: (a) => a.std(),
  max_all: (a) => a.max(),
  max_dim: (a) => {
    const m = a.max(1);
    return [m.values, m.indices];
  },
  min_dim_keep: (a) => {
    const m = a.min(0, true);
    return [m.values, m.indices];
  },
  argmax: (a) => a.argmax(1),
  argmax_all: (a) => a.argmax(),
  norm_all: (a) => a.norm(),
  norm_dim_keep: (a) => a.norm(2, -1, true),
  norm_l1_dim: (a) => a.norm(1, 0),
  logsumexp: (a) => a.logsumexp(1),
  prod_dim: (a) => a.prod(1),
  cumsum: (a) => a.cumsum(1),
  // linear algebra
  matmul_batched_broadcast: (a, b) => a.matmul(b!),
  matmul_vec: (a, b) => a.matmul(b!),
  mm: (a, b) => a.mm(b!),
  bmm: (a, b) => a.bmm(b!),
  linear: (x, w, b) => F.linear(x, w!, b),
  linear_nobias: (x, w) => F.linear(x, w!),
  einsum: (a, b) => einsum('bij,bjk->bik', a, b!),
  einsum_outer: (a, b) => einsum('i,j->ij', a, b!),
  cosine_similarity: (a, b) => F.cosineSimilarity(a, b!, -1),
  // shapes, views, indexing
  reshape_permute: (a) => a.reshape(2, 3, 4).permute(2, 0, 1).contiguous().mul(2),
  transpose_flatten: (a) => a.transpose(0, 1).flatten(1),
  unflatten: (a) => a.unflatten(1, [2, 3]).mul(3),
  squeeze_unsqueeze: (a) => a.squeeze(1).unsqueeze(0).add(1),
  expand: (a) => a.expand(3, 4, 5).mul(1.5),
  repeat: (a) => a.repeat(2, 3),
  narrow: (a) => a.narrow(1, 1, 2),
  select: (a) => a.select(1, 2),
  slice_step: (a) => a.slice(1, 1, null, 2),
  slice_neg: (a) => a.slice(0, -2).slice(1, null, -1),
  index_select: (a, i) => a.indexSelect(1, i!),
  gather: (a, i) => a.gather(1, i!),
  scatter_src: (a, i, s) => a.scatter(1, i!, s!),
  scatter_add: (a, i, s) => a.scatterAdd(0, i!, s!),
  masked_fill: (a, m) => a.maskedFill(m!.gt(0), -1),
  index_adv: (a, i) => a.index([i!]),
  index_two: (a, i, j) => a.index([i!, j!]),
  cat: (a, b) => cat([a, b!], 1),
  stack: (a, b) => stack([a, b!], -1),
  chunk: (a) => a.chunk(3, 1),
  split_sizes: (a) => a.split([1, 3], 0),
  split_size: (a) => a.split(2, 1),
  unbind: (a) => a.unbind(1),
  roll: (a) => a.roll([1, -2], [0, 1]),
  flip: (a) => a.flip(0, 1),
  tril: (a) => a.tril(-1),
  // neural-network functions
  gelu: (a) => F.gelu(a),
  gelu_tanh: (a) => F.gelu(a, 'tanh'),
  silu: (a) => F.silu(a),
  softmax: (a) => a.softmax(-1),
  log_softmax: (a) => a.logSoftmax(0),
  layer_norm: (x, w, b) => F.layerNorm(x, [6], w, b, 1e-6),
  layer_norm_noaffine: (x) => F.layerNorm(x, [3, 6]),
  group_norm: (x, w, b) => F.groupNorm(x, 2, w, b, 1e-5),
  conv2d: (x, w, b) => F.conv2d(x, w!, b, { stride: 2, padding: 1 }),
  conv2d_groups: (x, w) => F.conv2d(x, w!, null, { padding: 1, groups: 2 }),
  conv2d_same: (x, w) => F.conv2d(x, w!, null, { padding: 'same' }),
  conv2d_patch14: (x, w, b) => F.conv2d(x, w!, b, { stride: 14 }),
  conv_transpose2d: (x, w, b) => F.convTranspose2d(x, w!, b, { stride: 2, padding: 1, outputPadding: 1 }),
  conv1d: (x, w, b) => F.conv1d(x, w!, b),
  avg_pool2d: (x) => F.avgPool2d(x, 2),
  avg_pool2d_stride_pad: (x) => F.avgPool2d(x, 3, { stride: 2, padding: 1, countIncludePad: false }),
  max_pool2d: (x) => F.maxPool2d(x, 2),
  interp_nearest_size: (x) => F.interpolate(x, { size: [7, 5], mode: 'nearest' }),
  interp_bilinear_scale: (x) => F.interpolate(x, { scaleFactor: 1.5, mode: 'bilinear', alignCorners: false }),
  interp_bilinear_align: (x) => F.interpolate(x, { size: [6, 9], mode: 'bilinear', alignCorners: true }),
  interp_bilinear_down: (x) => F.interpolate(x, { size: [5, 5], mode: 'bilinear' }),
  interp_bilinear_aa_down: (x) => F.interpolate(x, { size: [5, 6], mode: 'bilinear', antialias: true }),
  interp_bicubic_size: (x) => F.interpolate(x, { size: [9, 7], mode: 'bicubic' }),
  interp_bicubic_aa_size: (x) => F.interpolate(x, { size: [4, 6], mode: 'bicubic', antialias: true }),
  interp_bicubic_offset_scale: (x) => F.interpolate(x, { scaleFactor: [4.1 / 9, 6.1 / 9], mode: 'bicubic' }),
  interp_area: (x) => F.interpolate(x, { size: [3, 3], mode: 'area' }),
  pad_constant: (x) => F.pad(x, [1, 2, 0, 1], 'constant', 0.5),
  pad_reflect: (x) => F.pad(x, [1, 1, 2, 2], 'reflect'),
  embedding: (w, i) => F.embedding(i!, w),
  sdpa: (q, k, v) => F.scaledDotProductAttention(q, k!, v!),
  sdpa_bool_mask: (q, k, v, m) => sdpaMask(q, k!, v!, m!),
  sdpa_causal: (q, k, v) => F.scaledDotProductAttention(q, k!, v!, { isCausal: true }),
  mse_loss: (a, b) => F.mseLoss(a, b!),
  mse_loss_none: (a, b) => F.mseLoss(a, b!, 'none'),
  cross_entropy: (x, t) => F.crossEntropy(x, t!),
  cross_entropy_smooth_sum: (x, t) => F.crossEntropy(x, t!, { reduction: 'sum', labelSmoothing: 0.1 }),
  normalize: (x) => F.normalize(x, 2, -1),
  dropout_seeded: seeded(7, (x) => F.dropout(x, 0.3, true)),
  // random numbers
  rand_randn: seeded(0, () => randn([6])),
  rand_rand: seeded(1, () => rand([2, 3])),
  rand_randint: seeded(2, () => randint(0, 10, [8])),
  rand_normal: seeded(3, () => normal(2, 3, [5])),
  rand_randperm: seeded(4, () => randperm(8)),
  rand_generator: () => randn([5], { generator: new Generator({ seed: 5 }) }),
  rand_uniform_: seeded(6, () => empty([4]).uniform_(-2, 3)),
};

const { tensors: data, metadata } = loadSafetensors(join(DATA, 'ops.safetensors'));
const names = metadata.cases!.split(',');

test('every reference case has a TypeScript counterpart', () => {
  assert.deepEqual(
    names.filter((n) => !(n in CASES)),
    [],
  );
  assert.deepEqual(
    Object.keys(CASES).filter((n) => !names.includes(n)),
    [],
  );
});

const TOL = { atol: 1e-5, rtol: 1e-5 };

for (const name of names) {
  test(`op parity: ${name}`, () => {
    tidy(() => {
      const inputs: Tensor[] = [];
      for (let i = 0; data.has(`${name}.in.${i}`); i++) {
        const x = data.get(`${name}.in.${i}`)!.clone();
        inputs.push(data.has(`${name}.grad.${i}`) ? x.requiresGrad_() : x);
      }
      const res = CASES[name]!(...inputs);
      const outs = Array.isArray(res) ? res : [res];
      outs.forEach((o, j) => assertClose(o, data.get(`${name}.out.${j}`)!, TOL, `${name} output ${j}`));
      const gradOuts = outs
        .map((o, j) => [o, data.get(`${name}.gout.${j}`)] as const)
        .filter(([, g]) => g !== undefined);
      if (gradOuts.length === 0) return;
      backward(
        gradOuts.map(([o]) => o),
        gradOuts.map(([, g]) => g!),
      );
      inputs.forEach((x, i) => {
        const expected = data.get(`${name}.grad.${i}`);
        if (expected) assertClose(x.grad ?? zeros(x.shape), expected, TOL, `${name} gradient of input ${i}`);
      });
    });
  });
}
