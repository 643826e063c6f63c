// omegaconf configs as plain data. Lightning checkpoints of Hydra-configured models pickle their hyper-parameters as
// omegaconf `DictConfig` / `ListConfig` objects; the inert unpickler (pickle.ts) hands them over as `PickledObject`
// records. This turns such records into plain objects, arrays and values, resolving node interpolations
// (`${a.b}` from the config root, `${.x}` / `${..x}` relative to the node) through the pickled parent links.
// Custom resolvers (`${mul:...}`, `${oc.env:...}`) would run code in omegaconf: they are refused, naming the key.
//
// Pickled layout (omegaconf 2.x): a container's state is {_metadata, _parent, _content} where `_content` is a dict of
// nodes (DictConfig), a list of nodes (ListConfig), None, or an interpolation / '???' string; a value node (AnyNode,
// StringNode, IntegerNode, ...) has {_metadata, _parent, _val}.
import { PickledObject } from './pickle.ts';

const DICT = 'omegaconf.dictconfig.DictConfig';
const LIST = 'omegaconf.listconfig.ListConfig';
const MAX_INTERPOLATION_DEPTH = 32;

/** A plain JSON-like value. */
export type Plain = null | boolean | number | bigint | string | Plain[] | { [key: string]: Plain };

export class OmegaconfError extends Error {
  constructor(problem: string) {
    super(problem);
    this.name = 'OmegaconfError';
  }
}

const isNode = (v: unknown): v is PickledObject => v instanceof PickledObject && v.className.startsWith('omegaconf.');
const stateOf = (n: PickledObject): Map<unknown, unknown> => (n.state instanceof Map ? n.state : new Map());
const parentOf = (n: PickledObject): PickledObject | null => {
  const p = stateOf(n).get('_parent');
  return isNode(p) ? p : null;
};

/** The child of a container at `key`, or undefined. */
function childOf(container: PickledObject, key: string): unknown {
  const content = stateOf(container).get('_content');
  if (container.className === DICT && content instanceof Map) return content.has(key) ? content.get(key) : undefined;
  if (container.className === LIST && Array.isArray(content) && /^\d+$/.test(key)) return content[Number(key)];
  return undefined;
}

/** Follows a dotted path (`a.b.0`) from a container. */
function select(from: PickledObject, path: string[], where: string): unknown {
  let node: unknown = from;
  for (const key of path) {
    if (!isNode(node)) throw new OmegaconfError(`${where}: interpolation path '${path.join('.')}' leaves the config`);
    node = childOf(node, key);
    if (node === undefined) throw new OmegaconfError(`${where}: interpolation '${path.join('.')}' names no key`);
  }
  return node;
}

/** Converts an omegaconf node (or plain data holding some) to plain data. `where` names it in errors. */
export function omegaconfToPlain(value: unknown, where = 'config'): Plain {
  return plain(value, where, 0, null);
}

function plain(value: unknown, where: string, depth: number, container: PickledObject | null): Plain {
  if (depth > MAX_INTERPOLATION_DEPTH)
    throw new OmegaconfError(`${where}: interpolations nested deeper than ${MAX_INTERPOLATION_DEPTH} (a cycle?)`);
  if (value instanceof Map)
    return Object.fromEntries([...value].map(([k, v]) => [String(k), plain(v, `${where}.${String(k)}`, depth, null)]));
  if (Array.isArray(value)) return value.map((v, i) => plain(v, `${where}.${i}`, depth, null));
  if (typeof value === 'string') return container ? interpolate(value, container, where, depth) : value;
  if (value === null || typeof value === 'boolean' || typeof value === 'number' || typeof value === 'bigint')
    return value;
  if (!isNode(value)) {
    const what = value instanceof PickledObject ? `pickled '${value.className}' object` : typeof value;
    throw new OmegaconfError(`${where}: holds a ${what}, not plain data`);
  }
  const content = stateOf(value).get(value.className === DICT || value.className === LIST ? '_content' : '_val');
  const parent = parentOf(value);
  if (value.className === DICT && content instanceof Map)
    return Object.fromEntries(
      [...content].map(([k, v]) => [String(k), plain(v, `${where}.${String(k)}`, depth, value)]),
    );
  if (value.className === LIST && Array.isArray(content))
    return content.map((v, i) => plain(v, `${where}.${i}`, depth, value));
  // a value node, or a container whose content is None or an interpolation string
  if (isNode(content) || content instanceof Map || Array.isArray(content))
    throw new OmegaconfError(`${where}: unexpected omegaconf layout in '${value.className}'`);
  return typeof content === 'string'
    ? interpolate(content, parent ?? value, where, depth)
    : plain(content, where, depth, null);
}

/** Resolves `${...}` in a string found in `container`: a whole-string interpolation keeps the target's type. */
function interpolate(s: string, container: PickledObject, where: string, depth: number): Plain {
  if (!s.includes('${')) return s;
  const refs = [...s.matchAll(/\$\{([^${}]*)\}/g)];
  const whole = refs.length === 1 && refs[0]![0] === s;
  if (!refs.length || (!whole && s.replace(/\$\{([^${}]*)\}/g, '').includes('${')))
    throw new OmegaconfError(`${where}: nested interpolation '${s}' is not supported (omegaconf resolvers run code)`);
  const resolveRef = (ref: string): Plain => {
    if (ref.includes(':'))
      throw new OmegaconfError(`${where}: '${s}' uses a custom resolver, which is not evaluated (it would run code)`);
    const dots = /^\.*/.exec(ref)![0].length;
    let base: PickledObject | null = container;
    if (dots === 0) while (base && parentOf(base)) base = parentOf(base);
    for (let i = 1; i < dots && base; i++) base = parentOf(base);
    if (!base) throw new OmegaconfError(`${where}: interpolation '${s}' goes above the config root`);
    const path = ref.slice(dots).split('.').filter(Boolean);
    const target = select(base, path, where);
    const parent = isNode(target) ? parentOf(target) : base;
    return plain(target, where, depth + 1, parent ?? base);
  };
  if (whole) return resolveRef(refs[0]![1]!);
  return s.replace(/\$\{([^${}]*)\}/g, (_, ref: string) => String(resolveRef(ref)));
}
