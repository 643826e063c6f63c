// Gradient modes and functional gradients.
import { native } from './native.ts';
import { dtypeCode } from './dtype.ts';
import { Tensor } from './tensor.ts';
import type { Device } from './device.ts';

function withGradMode<T>(enabled: boolean, fn: () => T): T {
  const prev = native.isGradEnabled();
  native.setGradEnabled(enabled);
  try {
    return fn();
  } finally {
    native.setGradEnabled(prev);
  }
}

/** Runs `fn` without recording operations for autograd (inference, parameter updates). */
export const noGrad = <T>(fn: () => T): T => withGradMode(false, fn);
/** Runs `fn` with gradient recording on, also inside `noGrad`. */
export const enableGrad = <T>(fn: () => T): T => withGradMode(true, fn);
export const isGradEnabled = (): boolean => native.isGradEnabled();

/** Gradients of `outputs` w.r.t. `inputs` (torch.autograd.grad); entries are null for unused inputs. */
export function grad(
  outputs: Tensor | Tensor[],
  inputs: Tensor | Tensor[],
  opts: { gradOutputs?: (Tensor | null)[]; retainGraph?: boolean; createGraph?: boolean; allowUnused?: boolean } = {},
): (Tensor | null)[] {
  const outs = Array.isArray(outputs) ? outputs : [outputs];
  const ins = Array.isArray(inputs) ? inputs : [inputs];
  const gradOuts = opts.gradOutputs ? opts.gradOutputs.map((g) => (g ? g.handle : null)) : null;
  const create = opts.createGraph ?? false;
  const res = native.autogradGrad(
    outs.map((t) => t.handle),
    ins.map((t) => t.handle),
    gradOuts,
    opts.retainGraph ?? create,
    create,
    opts.allowUnused ?? false,
  );
  return res.map((h) => (h === null ? null : new Tensor(h)));
}

/** Backward from several roots at once (torch.autograd.backward). */
export function backward(
  tensors: Tensor[],
  gradTensors?: (Tensor | null)[],
  opts: { retainGraph?: boolean } = {},
): void {
  native.backward(
    tensors.map((t) => t.handle),
    gradTensors ? gradTensors.map((g) => (g ? g.handle : null)) : null,
    opts.retainGraph ?? false,
    false,
  );
}

/**
 * Runs `fn` with autocast on `device`'s kind (CPU, or CUDA): matmuls and convolutions in `dtype` (bfloat16),
 * numerically sensitive ops in float32, as libtorch's autocast decides. Gradients flow back in the matching dtypes.
 */
export function autocast<T>(fn: () => T, dtype: 'bfloat16' | 'float16' = 'bfloat16', device: Device = 'cpu'): T {
  const set = device.startsWith('cuda') ? native.setAutocastCuda : native.setAutocastCpu;
  set(true, dtypeCode(dtype));
  try {
    return fn();
  } finally {
    set(false);
  }
}
