// State dicts from checkpoint files, whatever the format: safetensors, or torch.save archives (.pth/.pt/.ckpt/.bin).
// Keys are normalised for the usual wrappers: `_orig_mod.` (torch.compile) and a leading `module.` (DDP).
import { Tensor, type StateDict } from '../engine/index.ts';
import { loadSafetensors } from './safetensors.ts';
import { loadTorchCheckpoint } from './torch-checkpoint.ts';
import { looksLikeZip } from './zip.ts';

export function normalizeKey(key: string): string {
  return key.replace(/(^|\.)_orig_mod\./g, '$1').replace(/^module\./, '');
}

/** Bounds on the nesting a checkpoint's dicts may have when flattened to dotted keys. */
export const FLATTEN_LIMITS = { maxDepth: 64, maxKeys: 1_000_000 };

/**
 * The tensors of a nested checkpoint object as flat dotted keys (dicts inside dicts, e.g. {model: {...}}). A pickle
 * can share one dict in many places through its memo (24 levels of sharing flatten to 2^24 keys) or make a dict
 * hold itself: a dict met again is refused, as are nesting beyond `maxDepth` and more than `maxKeys` tensors.
 * Iterative, so deep nesting costs no stack.
 */
function flatten(path: string, root: unknown, out: StateDict): void {
  const seen = new Set<Map<unknown, unknown>>();
  const todo: { v: unknown; key: string; depth: number }[] = [{ v: root, key: '', depth: 0 }];
  while (todo.length) {
    const { v, key, depth } = todo.pop()!;
    if (v instanceof Tensor) {
      if (out.size >= FLATTEN_LIMITS.maxKeys)
        throw new Error(`${path}: more than ${FLATTEN_LIMITS.maxKeys} tensors; the file is corrupt or hostile`);
      out.set(key, v);
    } else if (v instanceof Map) {
      if (seen.has(v))
        throw new Error(
          `${path}: the dict at '${key}' appears more than once (or inside itself); ` +
            'refusing a shared or cyclic state dict',
        );
      if (depth >= FLATTEN_LIMITS.maxDepth)
        throw new Error(
          `${path}: dicts nested deeper than ${FLATTEN_LIMITS.maxDepth} levels at '${key.slice(0, 80)}...'`,
        );
      seen.add(v);
      const entries = [...v];
      for (let i = entries.length - 1; i >= 0; i--) {
        const [k, x] = entries[i]!;
        if (typeof k !== 'string' && typeof k !== 'number' && typeof k !== 'bigint')
          throw new Error(`${path}: a dict key at '${key}' is not a string or a number`);
        todo.push({ v: x, key: key ? `${key}.${String(k)}` : String(k), depth: depth + 1 });
      }
    }
  }
}

/**
 * Loads a state dict. For torch.save files holding more than a state dict, `key` selects the entry
 * (e.g. 'state_dict', 'model', 'teacher'); by default a top-level 'state_dict' or 'model' entry is used if present.
 */
export function loadStateDictFile(path: string, o: { key?: string } = {}): StateDict {
  let sd: StateDict;
  if (looksLikeZip(path)) {
    let obj = loadTorchCheckpoint(path);
    if (obj instanceof Map) {
      const pick = o.key ?? ['state_dict', 'model'].find((k) => obj instanceof Map && obj.get(k) instanceof Map);
      if (pick !== undefined) {
        if (!obj.has(pick))
          throw new Error(`${path}: no entry '${pick}' (top-level keys: ${[...obj.keys()].slice(0, 10).join(', ')})`);
        obj = obj.get(pick);
      }
    }
    sd = new Map();
    flatten(path, obj, sd);
    if (sd.size === 0) throw new Error(`${path}: the checkpoint holds no tensors${o.key ? ` under '${o.key}'` : ''}`);
  } else {
    sd = loadSafetensors(path).tensors;
  }
  return new Map([...sd].map(([k, v]) => [normalizeKey(k), v]));
}
