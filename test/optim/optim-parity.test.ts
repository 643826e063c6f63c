// Optimizer parity with torch.optim: 20 steps of a small MLP from the same state on the same batches must land on
// PyTorch's parameters within 1e-6 (reference: tools/reference/make_optim_cases.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { F, Tensor, tidy } from '../../src/index.ts';
import { GELU, Linear, Sequential } from '../../src/nn/index.ts';
import { AdamW, SGD, clipGradNorm, type Optimizer } from '../../src/optim/index.ts';
import { loadSafetensors } from '../../src/io/index.ts';
import { DATA, assertClose } from '../helpers.ts';

const { tensors: ref, metadata } = loadSafetensors(join(DATA, 'optim.safetensors'));
const STEPS = Number(metadata.steps);

function model(): Sequential {
  const m = new Sequential(new Linear(6, 16), new GELU(), new Linear(16, 3));
  m.loadStateDict(new Map([...ref].filter(([k]) => k.startsWith('init.')).map(([k, v]) => [k.slice(5), v])));
  return m;
}

function train(m: Sequential, opt: Optimizer<any, any>, clip?: number): number[] {
  const norms: number[] = [];
  const xs = ref.get('xs')!;
  const ys = ref.get('ys')!;
  for (let i = 0; i < STEPS; i++) {
    tidy(() => {
      const loss = F.mseLoss(m.forward(xs.select(0, i)), ys.select(0, i));
      opt.zeroGrad();
      loss.backward();
      if (clip !== undefined) norms.push(clipGradNorm(m.parameters(), clip));
      opt.step();
    });
  }
  return norms;
}

function expectParams(m: Sequential, name: string): void {
  for (const [k, v] of m.stateDict()) assertClose(v, ref.get(`${name}.${k}`)!, { atol: 1e-6, rtol: 0 }, `${name} ${k}`);
}

const groups = (m: Sequential): { params: Tensor[]; [k: string]: unknown }[] => {
  const named = [...m.namedParameters()];
  return [
    { params: named.filter(([n]) => n.endsWith('weight')).map(([, p]) => p), weightDecay: 0.1 },
    { params: named.filter(([n]) => n.endsWith('bias')).map(([, p]) => p), weightDecay: 0, lr: 5e-3 },
  ];
};

test('AdamW matches torch.optim.AdamW', () => {
  const m = model();
  train(m, new AdamW(m.parameters(), { lr: 1e-2, weightDecay: 0.1 }));
  expectParams(m, 'adamw');
});

test('AdamW with amsgrad and custom betas/eps matches', () => {
  const m = model();
  train(m, new AdamW(m.parameters(), { lr: 1e-2, betas: [0.8, 0.99], eps: 1e-6, weightDecay: 0.05, amsgrad: true }));
  expectParams(m, 'adamw_amsgrad');
});

test('AdamW parameter groups (no decay on biases, own lr) match', () => {
  const m = model();
  train(m, new AdamW(groups(m), { lr: 1e-2 }));
  expectParams(m, 'adamw_groups');
});

test('SGD with momentum and weight decay matches torch.optim.SGD', () => {
  const m = model();
  train(m, new SGD(m.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 1e-3 }));
  expectParams(m, 'sgd_momentum');
});

test('SGD with Nesterov momentum matches', () => {
  const m = model();
  train(m, new SGD(m.parameters(), { lr: 0.05, momentum: 0.9, nesterov: true }));
  expectParams(m, 'sgd_nesterov');
});

test('gradient-norm clipping matches clip_grad_norm_ (norms and resulting parameters)', () => {
  const m = model();
  const norms = train(m, new AdamW(m.parameters(), { lr: 1e-2 }), 0.5);
  const expected = ref.get('adamw_clip.grad_norms')!.toArray() as number[];
  norms.forEach((n, i) =>
    assert.ok(Math.abs(n - expected[i]!) <= 1e-6 * Math.max(1, expected[i]!), `step ${i}: norm ${n} vs ${expected[i]}`),
  );
  expectParams(m, 'adamw_clip');
});

test('optimizer state round-trips through stateDict/loadStateDict and continues identically', () => {
  const a = model();
  const b = model();
  const optA = new AdamW(a.parameters(), { lr: 1e-2, weightDecay: 0.1 });
  train(a, optA);
  // b takes a's weights and optimizer state, then both take one more identical step
  b.loadStateDict(a.stateDict());
  const optB = new AdamW(b.parameters(), { lr: 1e-2, weightDecay: 0.1 });
  optB.loadStateDict(optA.stateDict());
  for (const [m, opt] of [
    [a, optA],
    [b, optB],
  ] as const) {
    tidy(() => {
      const loss = F.mseLoss(m.forward(ref.get('xs')!.select(0, 0)), ref.get('ys')!.select(0, 0));
      opt.zeroGrad();
      loss.backward();
      opt.step();
    });
  }
  for (const [k, v] of a.stateDict()) assert.ok(v.equal(b.stateDict().get(k)!), `${k} differs after resuming`);
});

test('optimizers reject frozen and duplicated parameters', () => {
  const m = model();
  m.getSubmodule('0').requiresGrad_(false);
  assert.throws(() => new AdamW(m.parameters()), /does not require gradients/);
  const p = m.getSubmodule('2').parameters();
  assert.throws(() => new AdamW([{ params: p }, { params: p }]), /more than one parameter group/);
});

// ---------------------------------------------------------------------------------------------------------------
// AdamW alone, bit for bit: six steps on stored gradients (tools/reference/make_adamw_steps.py). The fused pass
// follows ATen's kernels op by op, fused multiply-adds where ATen's AVX2 kernels use them, so on a CPU that runs
// those kernels the parameters and both moments must come out identical, not merely close.
// ---------------------------------------------------------------------------------------------------------------

const steps = loadSafetensors(join(DATA, 'adamw-steps.safetensors'));
const ADAMW_RUNS = {
  plain: { lr: 1e-2, weightDecay: 0.1 },
  amsgrad: { lr: 3e-3, betas: [0.8, 0.99], eps: 1e-6, weightDecay: 0.05, amsgrad: true },
  maximize: { lr: 1e-3, weightDecay: 0, maximize: true },
} as const;

for (const [run, options] of Object.entries(ADAMW_RUNS)) {
  test(`AdamW (${run}) equals torch.optim.AdamW bit for bit on stored gradients`, (t) => {
    const cpu = readFileSync('/proc/cpuinfo', 'utf8');
    if (steps.metadata.cpu_capability === 'AVX2' && !(/\bavx2\b/.test(cpu) && /\bfma\b/.test(cpu)))
      return t.skip("proven-absent: this CPU has no AVX2+FMA, the kernels ATen ran to write the reference's rounding");
    const names = ['a', 'b', 'c'];
    const params = names.map((k) => steps.tensors.get(`init.${k}`)!.clone().requiresGrad_());
    const opt = new AdamW(params, options as never);
    for (let i = 0; i < Number(steps.metadata.steps); i++) {
      params.forEach((p, j) => (p.grad = steps.tensors.get(`grads.${names[j]}`)!.select(0, i).clone()));
      opt.step();
    }
    const exact = { atol: 0, rtol: 0 };
    const state = opt.stateDict().tensors;
    params.forEach((p, j) => {
      const k = names[j]!;
      assertClose(p.detach(), steps.tensors.get(`${run}.param.${k}`)!, exact, `${run} param ${k}`);
      for (const m of ['exp_avg', 'exp_avg_sq'])
        assertClose(state.get(`${j}.${m}`)!, steps.tensors.get(`${run}.${m}.${k}`)!, exact, `${run} ${m} ${k}`);
    });
  });
}
