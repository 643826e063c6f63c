// Module: PyTorch-compatible names, state dicts with complete error reports, freezing, modes and dtype moves.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { F, Tensor, manualSeed, randn, tensor, zeros } from '../../src/index.ts';
import {
  Conv2d,
  Embedding,
  GELU,
  LayerNorm,
  Linear,
  Module,
  ModuleList,
  Sequential,
  StateDictError,
  init,
} from '../../src/nn/index.ts';

class Block extends Module {
  readonly norm1: LayerNorm;
  readonly mlp: Sequential;
  readonly scale: Tensor;
  constructor(dim: number) {
    super();
    this.norm1 = this.module('norm1', new LayerNorm(dim, 1e-6));
    this.mlp = this.module('mlp', new Sequential(new Linear(dim, 2 * dim), new GELU(), new Linear(2 * dim, dim)));
    this.scale = this.param('gamma', zeros([dim]));
    this.buffer('steps', zeros([1], { dtype: 'int64' }));
    this.buffer('cache', zeros([2]), false);
  }
  forward(x: Tensor): Tensor {
    return x.add(this.mlp.forward(this.norm1.forward(x)).mul(this.scale));
  }
}

class Net extends Module {
  readonly blocks: ModuleList<Block>;
  constructor() {
    super();
    this.blocks = this.module('blocks', new ModuleList([new Block(4), new Block(4)]));
  }
}

test('state-dict keys follow the registered (PyTorch) names', () => {
  const keys = [...new Net().stateDict().keys()];
  assert.deepEqual(keys.slice(0, 8), [
    'blocks.0.gamma',
    'blocks.0.steps',
    'blocks.0.norm1.weight',
    'blocks.0.norm1.bias',
    'blocks.0.mlp.0.weight',
    'blocks.0.mlp.0.bias',
    'blocks.0.mlp.2.weight',
    'blocks.0.mlp.2.bias',
  ]);
  assert.ok(!keys.some((k) => k.includes('cache')), 'non-persistent buffers stay out');
  assert.equal(keys.length, 16);
});

test('loadStateDict copies values and reports every problem at once', () => {
  const a = new Net();
  const b = new Net();
  b.loadStateDict(a.stateDict());
  for (const [k, v] of a.stateDict()) assert.ok(v.equal(b.stateDict().get(k)!), k);

  const sd = new Map(a.stateDict());
  sd.delete('blocks.1.gamma');
  sd.set('blocks.9.extra', zeros([1]));
  sd.set('blocks.0.norm1.weight', zeros([5]));
  assert.throws(
    () => b.loadStateDict(sd, { context: 'net.safetensors' }),
    (e: StateDictError) => {
      assert.ok(e instanceof StateDictError);
      assert.deepEqual(e.missing, ['blocks.1.gamma']);
      assert.deepEqual(e.unexpected, ['blocks.9.extra']);
      assert.deepEqual(e.mismatched, [{ key: 'blocks.0.norm1.weight', expected: [4], got: [5] }]);
      assert.match(e.message, /^net\.safetensors: the state dict does not fit/);
      return true;
    },
  );
  sd.set('blocks.0.norm1.weight', zeros([4]));
  const r = b.loadStateDict(sd, { strict: false });
  assert.deepEqual(r, { missing: ['blocks.1.gamma'], unexpected: ['blocks.9.extra'] });
});

test('freezing a sub-tree stops its gradients; train/eval propagate', () => {
  const n = new Net();
  n.blocks.at(0).requiresGrad_(false);
  const x = randn([3, 4]);
  let h = x;
  for (const blk of n.blocks) h = blk.forward(h);
  h.sum().backward();
  assert.equal((n.blocks.at(0).mlp.at(0) as Linear).weight.hasGrad, false);
  assert.equal(n.blocks.at(1).scale.hasGrad, true);
  assert.equal(n.numParameters({ trainableOnly: true }) * 2, n.numParameters());
  n.eval();
  assert.ok([...n.namedModules()].every(([, m]) => !m.training));
  n.train();
  assert.ok(n.blocks.at(1).mlp.training);
});

test('to(dtype) converts floating parameters in place, keeping the Tensor objects', () => {
  const n = new Net();
  const p = n.blocks.at(0).scale;
  n.to({ dtype: 'float64' });
  assert.equal(p, n.blocks.at(0).scale);
  assert.equal(p.dtype, 'float64');
  assert.equal(p.requiresGrad, true);
  assert.equal(n.stateDict().get('blocks.0.steps')!.dtype, 'int64', 'integer buffers keep their dtype');
});

test('default initialisation equals PyTorch for the same seed', () => {
  // torch.manual_seed(0); l = torch.nn.Linear(3, 2); l.weight.tolist(), l.bias.tolist()  (PyTorch 1.13)
  manualSeed(0);
  const l = new Linear(3, 2);
  const expectedW = tensor([
    [-0.004322517663240433, 0.3097158372402191, -0.4751853346824646],
    [-0.4248946011066437, -0.2223689705133438, 0.15482072532176971],
  ]);
  const expectedB = tensor([-0.011439144611358643, 0.45777493715286255]);
  assert.ok(l.weight.equal(expectedW), String(l.weight));
  assert.ok(l.bias!.equal(expectedB), String(l.bias));
});

test('init helpers draw in place with the documented distributions', () => {
  manualSeed(1);
  const w = init.truncNormal_(zeros([20000]), 0, 0.02, -0.04, 0.04);
  assert.ok(w.abs().max().item() <= 0.04);
  assert.ok(Math.abs(w.std().item() - 0.0176) < 0.001, 'std of N(0, 0.02) truncated at 2σ');
  const c = new Conv2d(3, 8, 3, { padding: 1 });
  assert.deepEqual(c.forward(randn([1, 3, 5, 5])).shape, [1, 8, 5, 5]);
  const e = new Embedding(10, 4);
  assert.deepEqual(e.forward(tensor([1, 2], { dtype: 'int64' })).shape, [2, 4]);
  assert.deepEqual(init.fans(c.weight), { fanIn: 27, fanOut: 72 });
  assert.ok(F.gelu(randn([2])).shape.length === 1);
});

test('duplicate or dotted child names are rejected', () => {
  class Bad extends Module {
    constructor(name: string) {
      super();
      this.module('x', new GELU());
      this.param(name, zeros([1]));
    }
  }
  assert.throws(() => new Bad('x'), /'x' is already registered/);
  assert.throws(() => new Bad('a.b'), /contain no dots/);
});
