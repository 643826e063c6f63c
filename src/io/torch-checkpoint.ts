// torch.save files (PyTorch ≥ 1.6 zip format: <archive>/data.pkl + one entry per storage in <archive>/data/),
// read with the restricted unpickler: tensors are rebuilt from their storages, nothing else from the file runs.
// Used for DINOv2's torch-hub .pth files and other .pt/.ckpt checkpoints.
import { Tensor, aten, empty, fromBytes, type DType } from '../engine/index.ts';
import { itemSize } from '../engine/dtype.ts';
import { native } from '../engine/native.ts';
import { GlobalRef, unpickle, type PickleGlobal } from './pickle.ts';
import { ZipFile, looksLikeZip } from './zip.ts';

/** torch.<X>Storage classes name the dtype of a storage in its persistent id. */
class StorageType {
  constructor(readonly dtype: DType) {}
}

const STORAGE_TYPES: Record<string, StorageType> = Object.fromEntries(
  (
    [
      ['Float', 'float32'],
      ['Double', 'float64'],
      ['Half', 'float16'],
      ['BFloat16', 'bfloat16'],
      ['Long', 'int64'],
      ['Int', 'int32'],
      ['Short', 'int16'],
      ['Char', 'int8'],
      ['Byte', 'uint8'],
      ['Bool', 'bool'],
    ] as const
  ).map(([n, d]) => [`torch.${n}Storage`, new StorageType(d)]),
);

/** A storage as the pickle sees it: only `_rebuild_tensor*` may use it; as a value of its own it is refused. */
class TorchStorage {
  constructor(readonly data: Tensor) {}
}

export interface TorchLoadOptions {
  /**
   * Bytes that tensor views may materialise beyond the storages the file holds. A view with zero or overlapping
   * strides (an expanded tensor) or many views of one storage are copied out; this bounds what a small file can
   * make us allocate. Default 64 MiB.
   */
  maxExpandedBytes?: number;
  /** Objects of unknown classes come back as `PickledObject` records instead of being refused (globals that run
   * code are refused either way). */
  inert?: boolean;
}

const DEFAULT_MAX_EXPANDED_BYTES = 64 * 1024 * 1024;

function isContiguous(size: number[], stride: number[]): boolean {
  let expected = 1;
  for (let i = size.length - 1; i >= 0; i--) {
    if (size[i] !== 1 && stride[i] !== expected) return false;
    expected *= size[i]!;
  }
  return true;
}

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isCounts = (v: unknown): v is number[] => Array.isArray(v) && v.length <= 64 && v.every(isCount);

/**
 * Loads a torch.save file. Returns the unpickled object: Maps for dicts (state dicts are Map<string, Tensor>),
 * arrays, numbers, strings and Tensors. Unknown Python globals are refused by name; with `inert`, objects of unknown
 * classes come back as `PickledObject` records instead (e.g. a Lightning checkpoint's omegaconf hyper-parameters).
 * Globals that run code are refused either way.
 */
export function loadTorchCheckpoint(path: string, o: TorchLoadOptions = {}): unknown {
  if (!looksLikeZip(path)) {
    throw new Error(
      `${path}: not a zip-format torch.save file. Files written by PyTorch < 1.6 (legacy format) are not supported; ` +
        `re-save them with a recent PyTorch (torch.save(torch.load(f), g)).`,
    );
  }
  const maxExpanded = o.maxExpandedBytes ?? DEFAULT_MAX_EXPANDED_BYTES;
  const zip = ZipFile.open(path);
  const storages = new Map<string, TorchStorage>(); // storage key -> its 1-D tensor
  let heldBytes = 0; // bytes of the storages read from the file
  let copiedBytes = 0; // bytes of views copied out of them
  try {
    const pkl = [...zip.entries.keys()].find((n) => n.endsWith('/data.pkl') || n === 'data.pkl');
    if (!pkl) throw new Error(`${path}: zip archive without data.pkl — not a torch.save file`);
    const prefix = pkl.slice(0, pkl.length - 'data.pkl'.length);
    if (zip.entries.has(`${prefix}byteorder`) && zip.read(`${prefix}byteorder`).toString().trim() !== 'little') {
      throw new Error(`${path}: big-endian checkpoints are not supported`);
    }

    // persistent id ('storage', <StorageType>, key, location, numel): read each storage once, straight into memory
    // (errors thrown here and in the functions below are reported by the unpickler against the file)
    const storage = (pid: unknown): TorchStorage => {
      const [kind, type, key, , numel] = (Array.isArray(pid) ? pid : []) as unknown[];
      const st = type instanceof GlobalRef ? type.value : undefined;
      if (kind !== 'storage' || !(st instanceof StorageType) || typeof key !== 'string' || !isCount(numel))
        throw new Error('unsupported persistent id in data.pkl');
      const cached = storages.get(key);
      if (cached) return cached;
      const entry = zip.entries.get(`${prefix}data/${key}`);
      if (!entry) throw new Error(`storage ${JSON.stringify(key)} is missing from the archive`);
      if (entry.size !== numel * itemSize(st.dtype))
        throw new Error(`storage ${JSON.stringify(key)} has ${entry.size} bytes, expected ${numel} ${st.dtype} values`);
      let t: Tensor;
      if (entry.method === 0) {
        t = empty([numel], { dtype: st.dtype });
        try {
          native.readInto(t.handle, zip.fd, zip.dataOffset(entry));
        } catch (e) {
          t.dispose();
          throw e;
        }
      } else {
        t = fromBytes(zip.read(entry.name), st.dtype, [numel]);
      }
      heldBytes += entry.size;
      const s = new TorchStorage(t);
      storages.set(key, s);
      return s;
    };

    // _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]): a view of the storage,
    // copied out unless it covers the whole storage (so a small view does not pin a large shared storage). The view
    // must lie inside the storage, and copies count against the bytes the file holds plus `maxExpandedBytes`.
    const rebuildTensor = (base: unknown, offset: unknown, size: unknown, stride: unknown): Tensor => {
      if (!(base instanceof TorchStorage)) throw new Error('_rebuild_tensor: the first argument is not a storage');
      if (!isCount(offset) || !isCounts(size) || !isCounts(stride) || size.length !== stride.length)
        throw new Error(
          `_rebuild_tensor: malformed offset/size/stride ${describeArgs(offset)}, ${describeArgs(size)}, ` +
            describeArgs(stride),
        );
      const numel = size.reduce((a, b) => a * b, 1);
      const storageNumel = base.data.numel;
      if (numel > 0) {
        const last = size.reduce((a, n, i) => a + (n - 1) * stride[i]!, offset);
        if (!Number.isSafeInteger(last) || last >= storageNumel)
          throw new Error(
            `a tensor of size [${size.join(', ')}] and strides [${stride.join(', ')}] at offset ${offset} ` +
              `reaches past its storage of ${storageNumel} elements`,
          );
      }
      if (offset === 0 && numel === storageNumel && isContiguous(size, stride))
        return aten('aten::as_strided', base.data, size, stride, offset);
      const bytes = numel * itemSize(base.data.dtype);
      if (copiedBytes + bytes > heldBytes + maxExpanded)
        throw new Error(
          `a tensor of size [${size.join(', ')}] (${bytes} bytes) would take the views copied out of this ` +
            `file's ${heldBytes} bytes of storage past the limit of ${maxExpanded} extra bytes (maxExpandedBytes)`,
        );
      copiedBytes += bytes;
      const view: Tensor = aten('aten::as_strided', base.data, size, stride, offset);
      const copy = view.clone();
      view.dispose();
      return copy;
    };
    const parameter = (data: unknown): Tensor => {
      if (!(data instanceof Tensor)) throw new Error('_rebuild_parameter: the argument is not a tensor');
      return data;
    };
    const globals: Record<string, PickleGlobal> = {
      ...STORAGE_TYPES,
      'collections.OrderedDict': () => new Map(),
      'collections.defaultdict': () => new Map(), // a dict; its default factory is never called
      'torch._utils._rebuild_tensor_v2': rebuildTensor,
      'torch._utils._rebuild_tensor': rebuildTensor,
      'torch._utils._rebuild_parameter': parameter,
      'torch._utils._rebuild_parameter_with_state': parameter,
      'torch.Size': (dims: number[]) => dims,
      'torch.device': (type: string, index?: number | null) =>
        index === undefined || index === null ? type : `${type}:${index}`,
      '_codecs.encode': (s: string, encoding: string) => Buffer.from(s, encoding === 'latin1' ? 'latin1' : 'utf8'),
      'builtins.set': (items: unknown[] = []) => new Set(items),
    };
    const obj = unpickle(zip.read(pkl), { source: path, globals, persistentLoad: storage, inert: o.inert });
    if (holdsStorage(obj))
      throw new Error(`${path}: data.pkl returns a raw storage as a value (only tensors built on storages are read)`);
    return obj;
  } finally {
    for (const s of storages.values()) s.data.dispose(); // rebuilt tensors keep their own reference to the memory
    zip.close();
  }
}

/** Whether a storage is reachable from `obj` as a value (each container visited once: linear, no recursion). */
function holdsStorage(obj: unknown): boolean {
  const seen = new Set<object>();
  const todo: unknown[] = [obj];
  while (todo.length) {
    const v = todo.pop();
    if (v instanceof TorchStorage) return true;
    if (typeof v !== 'object' || v === null || seen.has(v)) continue;
    seen.add(v);
    if (Array.isArray(v) || v instanceof Set) for (const x of v) todo.push(x);
    else if (v instanceof Map) for (const [k, x] of v) todo.push(k, x);
  }
  return false;
}

/** A pickled value as an error message shows it (numbers and lists of them; other things by kind). */
function describeArgs(v: unknown): string {
  const one = (x: unknown): string =>
    typeof x === 'number' || typeof x === 'bigint' || typeof x === 'boolean'
      ? String(x)
      : typeof x === 'string'
        ? JSON.stringify(x.slice(0, 20))
        : x === null
          ? 'None'
          : x === undefined
            ? '(missing)'
            : Array.isArray(x)
              ? 'a list'
              : x instanceof Map
                ? 'a dict'
                : x instanceof Tensor || x instanceof TorchStorage
                  ? 'a tensor'
                  : x instanceof GlobalRef
                    ? x.name
                    : typeof x;
  const s = Array.isArray(v) ? `[${v.map(one).join(', ')}]` : one(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
