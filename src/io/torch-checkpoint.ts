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

function isContiguous(size: number[], stride: number[]): boolean {
  let expected = 1;
  for (let i = size.length - 1; i >= 0; i--) {
    if (size[i] !== 1 && stride[i] !== expected) return false;
    expected *= size[i]!;
  }
  return true;
}

/**
 * Loads a torch.save file. Returns the unpickled object: Maps for dicts (state dicts are Map<string, Tensor>),
 * arrays, numbers, strings and Tensors. Unknown Python globals are refused by name.
 */
export function loadTorchCheckpoint(path: string): unknown {
  if (!looksLikeZip(path)) {
    throw new Error(
      `${path}: not a zip-format torch.save file. Files written by PyTorch < 1.6 (legacy format) are not supported; ` +
        `re-save them with a recent PyTorch (torch.save(torch.load(f), g)).`,
    );
  }
  const zip = ZipFile.open(path);
  const storages = new Map<string, Tensor>(); // storage key -> 1-D tensor holding it
  try {
    const pkl = [...zip.entries.keys()].find((n) => n.endsWith('/data.pkl') || n === 'data.pkl');
    if (!pkl) throw new Error(`${path}: zip archive without data.pkl — not a torch.save file`);
    const prefix = pkl.slice(0, pkl.length - 'data.pkl'.length);
    if (zip.entries.has(`${prefix}byteorder`) && zip.read(`${prefix}byteorder`).toString().trim() !== 'little') {
      throw new Error(`${path}: big-endian checkpoints are not supported`);
    }

    // persistent id ('storage', <StorageType>, key, location, numel): read each storage once, straight into memory
    const storage = (pid: unknown): Tensor => {
      const [kind, type, key, , numel] = (Array.isArray(pid) ? pid : []) as [string, unknown, string, string, number];
      const st = type instanceof GlobalRef ? type.value : undefined;
      if (kind !== 'storage' || !(st instanceof StorageType))
        throw new Error(`${path}: unsupported persistent id in data.pkl`);
      const cached = storages.get(key);
      if (cached) return cached;
      const entry = zip.entries.get(`${prefix}data/${key}`);
      if (!entry) throw new Error(`${path}: storage ${key} is missing from the archive`);
      if (entry.size !== numel * itemSize(st.dtype))
        throw new Error(`${path}: storage ${key} has ${entry.size} bytes, expected ${numel} ${st.dtype} values`);
      let t: Tensor;
      if (entry.method === 0) {
        t = empty([numel], { dtype: st.dtype });
        native.readInto(t.handle, zip.fd, zip.dataOffset(entry));
      } else {
        t = fromBytes(zip.read(entry.name), st.dtype, [numel]);
      }
      storages.set(key, t);
      return t;
    };

    // _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]): a view of the storage,
    // copied out unless it covers the whole storage (so a small view does not pin a large shared storage)
    const rebuildTensor = (base: Tensor, offset: number, size: number[], stride: number[]): Tensor => {
      const view: Tensor = aten('aten::as_strided', base, size, stride, offset);
      if (offset === 0 && view.numel === base.numel && isContiguous(size, stride)) return view;
      const copy = view.clone();
      view.dispose();
      return copy;
    };
    const globals: Record<string, PickleGlobal> = {
      ...STORAGE_TYPES,
      'collections.OrderedDict': () => new Map(),
      'torch._utils._rebuild_tensor_v2': rebuildTensor,
      'torch._utils._rebuild_tensor': rebuildTensor,
      'torch._utils._rebuild_parameter': (data: Tensor) => data,
      'torch._utils._rebuild_parameter_with_state': (data: Tensor) => data,
      'torch.Size': (dims: number[]) => dims,
      'torch.device': (type: string, index?: number | null) =>
        index === undefined || index === null ? type : `${type}:${index}`,
      '_codecs.encode': (s: string, encoding: string) => Buffer.from(s, encoding === 'latin1' ? 'latin1' : 'utf8'),
      'builtins.set': (items: unknown[] = []) => new Set(items),
    };
    return unpickle(zip.read(pkl), { source: path, globals, persistentLoad: storage });
  } finally {
    for (const t of storages.values()) t.dispose(); // rebuilt tensors keep their own reference to the memory
    zip.close();
  }
}
