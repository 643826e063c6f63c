// torch.save archives through the restricted unpickler: tensors of every dtype, shared storages and strided views,
// plain data, the DINOv2 torch-hub format end to end, and refusal of pickles that would run code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Tensor, noGrad, tidy } from '../../src/index.ts';
import { loadSafetensors } from '../../src/io/index.ts';
import { loadTorchCheckpoint } from '../../src/io/torch-checkpoint.ts';
import { loadStateDictFile } from '../../src/io/checkpoint-file.ts';
import { InertGlobal, PickledObject, unpickle, UnpicklingError } from '../../src/io/pickle.ts';
import { loadDinov2 } from '../../src/models/dinov2-weights.ts';
import { DATA, assertClose } from '../helpers.ts';
import { PickleCall, pickleWithStorages } from '../torch-save-writer.ts';

test('tensors of every dtype, views and strided tensors come back exactly; plain data keeps its types', () => {
  const obj = loadTorchCheckpoint(join(DATA, 'pickle-cases.pth')) as Map<string, any>;
  const expected = loadSafetensors(join(DATA, 'pickle-cases.safetensors')).tensors;
  const sd = obj.get('state_dict') as Map<string, Tensor>;
  assert.deepEqual([...sd.keys()], [...expected.keys()]);
  for (const [k, e] of expected) {
    const t = sd.get(k)!;
    assert.equal(t.dtype, e.dtype, k);
    assert.deepEqual(t.shape, e.shape, k);
    assert.ok(t.equal(e), `${k} values`);
  }
  assert.equal(obj.get('epoch'), 7);
  assert.equal(obj.get('big'), 2n ** 62n);
  assert.equal(obj.get('lr'), 0.5);
  assert.equal(obj.get('name'), 'ünïcode');
  assert.equal(obj.get('none'), null);
  assert.deepEqual(obj.get('flags'), [true, false]);
  assert.deepEqual(obj.get('shape'), [2, 3]);
  assert.deepEqual(obj.get('blob'), Buffer.from([0, 1, 255]));
  assert.deepEqual((obj.get('nested').get('a').get('b') as Tensor).toArray(), [1, 1]);
});

test('loadStateDictFile picks the state dict and flattens nested checkpoints', () => {
  const sd = loadStateDictFile(join(DATA, 'pickle-cases.pth'));
  assert.ok(sd.has('view_t') && sd.has('param'));
  const nested = loadStateDictFile(join(DATA, 'pickle-cases.pth'), { key: 'nested' });
  assert.deepEqual([...nested.keys()], ['a.b']);
  assert.throws(() => loadStateDictFile(join(DATA, 'pickle-cases.pth'), { key: 'nope' }), /no entry 'nope'/);
});

// Committed data only: the .pth and the .safetensors hold the same random SwiGLU DINOv2 and the cases its outputs,
// all written by tools/reference/make_dinov2_swiglu.py (PyTorch's own torch.save).
test('a torch-hub style .pth loads into DINOv2: the same weights as the .safetensors, the reference outputs', () => {
  const pth = join(DATA, 'dinov2-swiglu-tiny.pth');
  const st = loadSafetensors(join(DATA, 'dinov2-swiglu-tiny.safetensors')).tensors;
  const fromPth = loadStateDictFile(pth);
  assert.deepEqual([...fromPth.keys()].sort(), [...st.keys()].sort());
  for (const [k, v] of st) {
    const t = fromPth.get(k)!;
    assert.equal(t.dtype, v.dtype, k);
    assert.ok(t.equal(v), `${k}: the .pth value differs from the .safetensors one`);
  }
  const { tensors: cases, metadata } = loadSafetensors(join(DATA, 'dinov2-swiglu-tiny.cases.safetensors'));
  const model = loadDinov2(pth, { overrides: { numHeads: JSON.parse(metadata.config!).num_heads } }).eval();
  tidy(() =>
    noGrad(() => {
      const out = model.forwardFeatures(cases.get('pixel_values')!);
      const tol = JSON.parse(metadata.tolerance!);
      assertClose(out.xNormClstoken, cases.get('x_norm_clstoken')!, tol, 'cls token from .pth weights');
    }),
  );
  model.dispose();
});

test('a pickle that would run code is refused, naming the global, and nothing runs', () => {
  assert.throws(
    () => loadTorchCheckpoint(join(DATA, 'malicious.pth')),
    (e: Error) => {
      assert.ok(e instanceof UnpicklingError);
      assert.match(e.message, /refusing global '(posix|os)\.system': it can run code/);
      return true;
    },
  );
  assert.equal(existsSync('/tmp/reptok-pickle-exploit'), false);
  // the same refusal for other code paths: builtins.eval through REDUCE, INST, and unknown classes
  const evalPickle = Buffer.concat([
    Buffer.from('\x80\x02cbuiltins\neval\nq\x00X\x04\x00\x00\x001+1q\x01\x85q\x02Rq\x03.', 'latin1'),
  ]);
  assert.throws(() => unpickle(evalPickle, { globals: {} }), /refusing global 'builtins\.eval': it can run code/);
  assert.throws(
    () => unpickle(Buffer.from('(ios\nsystem\n.', 'latin1'), { globals: {} }),
    /refusing to instantiate 'os\.system'/,
  );
});

test('inert mode reads objects of unknown classes as records of their state, never constructing them', () => {
  const thing = new PickledObject('mylib.config.Thing', [1, 'a']);
  thing.state = new Map<unknown, unknown>([
    ['width', 64],
    ['self', thing], // a cycle through the memo
    ['kind', new InertGlobal('mylib.kinds.Big')],
  ]);
  const { pkl } = pickleWithStorages(new Map([['cfg', thing]]));
  assert.throws(() => unpickle(pkl, { globals: {} }), /refusing to load global 'mylib\.config\.Thing'/);
  const back = (unpickle(pkl, { globals: {}, inert: true }) as Map<string, PickledObject>).get('cfg')!;
  assert.ok(back instanceof PickledObject);
  assert.equal(back.className, 'mylib.config.Thing');
  assert.deepEqual(back.args, [1, 'a']);
  const state = back.state as Map<string, unknown>;
  assert.equal(state.get('width'), 64);
  assert.equal(state.get('self'), back);
  assert.ok(state.get('kind') instanceof InertGlobal && (state.get('kind') as InertGlobal).name === 'mylib.kinds.Big');
});

test('inert dict and list subclasses keep their items; NEWOBJ_EX keeps its keyword arguments', () => {
  const read = (text: string): PickledObject =>
    unpickle(Buffer.from(`\x80\x02${text}.`, 'latin1'), { globals: {}, inert: true }) as PickledObject;
  const dict = read('cmylib\nD\n)\x81(X\x01\x00\x00\x00aK\x01u');
  assert.deepEqual([dict.className, [...dict.items]], ['mylib.D', [['a', 1]]]);
  const list = read('cmylib\nL\n)\x81(K\x01K\x02e');
  assert.deepEqual([list.className, list.list], ['mylib.L', [1, 2]]);
  const kw = read('cmylib\nK\n)}X\x01\x00\x00\x00xK\x03s\x92');
  assert.deepEqual([kw.className, [...kw.kwargs]], ['mylib.K', [['x', 3]]]);
});

test('code-running globals are refused in every mode, however they are reached', () => {
  const cases: [string, unknown[]][] = [
    ['os.system', ['touch /tmp/reptok-inert-exploit']],
    ['posix.system', ['touch /tmp/reptok-inert-exploit']],
    ['nt.system', ['x']],
    ['subprocess.Popen', [['touch', '/tmp/reptok-inert-exploit']]],
    ['builtins.eval', ['1+1']],
    ['builtins.exec', ['pass']],
    ['builtins.getattr', [1, 'real']],
    ['__builtin__.__import__', ['os']],
    ['importlib.import_module', ['os']],
    ['runpy._run_code', ['x', new Map()]],
    ['torch.hub.load', ['a/b', 'c']],
    ['operator.attrgetter', ['system']],
    ['functools.partial', [1]],
    ['pickle.loads', [Buffer.from('x')]],
  ];
  for (const [global, args] of cases) {
    const { pkl } = pickleWithStorages(new Map([['hp', new PickleCall(global, args)]]));
    for (const inert of [false, true])
      assert.throws(
        () => unpickle(pkl, { globals: {}, inert }),
        new RegExp(`refusing global '${global.replace(/\./g, '\\.')}': it can run code`),
        `${global} (inert: ${inert})`,
      );
  }
  assert.equal(existsSync('/tmp/reptok-inert-exploit'), false);
  // data builtins stay readable as inert names
  const { pkl } = pickleWithStorages([new InertGlobal('builtins.dict'), new InertGlobal('__builtin__.long')]);
  const names = (unpickle(pkl, { globals: {}, inert: true }) as InertGlobal[]).map((g) => g.name);
  assert.deepEqual(names, ['builtins.dict', '__builtin__.long']);
});

test('damaged and foreign files are clear errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'reptok-pth-'));
  const notZip = join(dir, 'legacy.pth');
  writeFileSync(notZip, Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc]));
  assert.throws(() => loadTorchCheckpoint(notZip), /not a zip-format torch\.save file.*legacy/);
  assert.throws(
    () => unpickle(Buffer.from([0x80, 0x02, 0x5d]), { globals: {}, source: 'x.pkl' }),
    /x\.pkl: truncated pickle/,
  );
  assert.throws(() => unpickle(Buffer.from([0xff]), { globals: {} }), /unknown or unsupported pickle opcode 0xff/);
});
