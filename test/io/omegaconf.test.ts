// omegaconf configs read as data from inert pickle records: nested dicts and lists, node interpolations (absolute and
// relative, through the pickled parent links), and refusal of custom resolvers.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { PickledObject } from '../../src/io/pickle.ts';
import { omegaconfToPlain } from '../../src/io/omegaconf.ts';

/** A pickled omegaconf node as the inert unpickler returns it, its parent link set like omegaconf's. */
function node(kind: 'dict' | 'list' | 'any', content: unknown, parent: PickledObject | null = null): PickledObject {
  const cls = { dict: 'dictconfig.DictConfig', list: 'listconfig.ListConfig', any: 'nodes.AnyNode' }[kind];
  const n = new PickledObject(`omegaconf.${cls}`, []);
  const state = new Map<unknown, unknown>([
    ['_metadata', new PickledObject('omegaconf.base.Metadata', [])],
    ['_parent', parent],
  ]);
  state.set(kind === 'any' ? '_val' : '_content', content);
  n.state = state;
  return n;
}

/** Builds {model: {width: 64, d_ff: '${.width}', levels: [1, '${model.width}'], name: 'w${model.width}'}}. */
function config(dFF: string): PickledObject {
  const root = node('dict', null);
  const model = node('dict', null, root);
  const levels = node('list', null, model);
  levels.state = new Map([...(levels.state as Map<unknown, unknown>)]);
  (levels.state as Map<unknown, unknown>).set('_content', [
    node('any', 1, levels),
    node('any', '${model.width}', levels),
  ]);
  (model.state as Map<unknown, unknown>).set(
    '_content',
    new Map<unknown, unknown>([
      ['width', node('any', 64, model)],
      ['d_ff', node('any', dFF, model)],
      ['levels', levels],
      ['name', node('any', 'w${model.width}', model)],
    ]),
  );
  (root.state as Map<unknown, unknown>).set('_content', new Map([['model', model]]));
  return model;
}

test('dicts, lists and values become plain data; interpolations resolve through the parent links', () => {
  const model = config('${.width}');
  assert.deepEqual(omegaconfToPlain(new Map([['net', model]])), {
    net: { width: 64, d_ff: 64, levels: [1, 64], name: 'w64' },
  });
});

test('custom resolvers and missing keys are refused, naming the key', () => {
  assert.throws(() => omegaconfToPlain(config('${mul:${.width},3}'), 'hp'), /hp\.d_ff: .*not supported|resolver/);
  assert.throws(
    () => omegaconfToPlain(config('${oc.env:HOME}'), 'hp'),
    /hp\.d_ff: '\$\{oc\.env:HOME\}' uses a custom resolver/,
  );
  assert.throws(() => omegaconfToPlain(config('${.depth}'), 'hp'), /hp\.d_ff: interpolation 'depth' names no key/);
  assert.throws(() => omegaconfToPlain(new PickledObject('mylib.Thing', []), 'hp'), /pickled 'mylib\.Thing' object/);
});
