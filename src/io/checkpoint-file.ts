// State dicts from checkpoint files, whatever the format: safetensors, or torch.save archives (.pth/.pt/.ckpt/.bin).
// Keys are normalised for the usual wrappers: `_orig_mod.` (torch.compile) and a leading `module.` (DDP).
import { Tensor, type StateDict } from '../engine/index.ts';
import { loadSafetensors } from './safetensors.ts';
import { loadTorchCheckpoint } from './torch-checkpoint.ts';
import { looksLikeZip } from './zip.ts';

export function normalizeKey(key: string): string {
  return key.replace(/(^|\.)_orig_mod\./g, '$1').replace(/^module\./, '');
}

/** The tensors of a nested checkpoint object as flat dotted keys (dicts inside dicts, e.g. {model: {...}}). */
function flatten(obj: unknown, prefix: string, out: StateDict): void {
  if (obj instanceof Tensor) out.set(prefix, obj);
  else if (obj instanceof Map) for (const [k, v] of obj) flatten(v, prefix ? `${prefix}.${String(k)}` : String(k), out);
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
    flatten(obj, '', sd);
    if (sd.size === 0) throw new Error(`${path}: the checkpoint holds no tensors${o.key ? ` under '${o.key}'` : ''}`);
  } else {
    sd = loadSafetensors(path).tensors;
  }
  return new Map([...sd].map(([k, v]) => [normalizeKey(k), v]));
}
