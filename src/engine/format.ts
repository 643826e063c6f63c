// Printing tensors for humans: values for small tensors (like PyTorch's repr), shape and dtype always.
import type { Tensor } from './tensor.ts';

const MAX_PRINTED = 1000;
const EDGE = 3; // items shown at each end of a long dimension

export function formatTensor(t: Tensor): string {
  const header = `${t.dtype}[${t.shape.join(', ')}]${t.device === 'cpu' ? '' : ` ${t.device}`}`;
  const extra = t.requiresGrad ? ', requiresGrad' : '';
  if (t.numel > MAX_PRINTED) return `Tensor(${header}${extra})`;
  const values: any = t.toArray();
  const fmt = (v: number | boolean): string => {
    if (typeof v === 'boolean') return String(v);
    if (t.dtype.startsWith('int') || t.dtype === 'uint8') return String(v);
    return Number.isInteger(v) && Math.abs(v) < 1e6
      ? `${v}.`
      : Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-4)
        ? v.toExponential(4)
        : v.toFixed(4);
  };
  const render = (v: any, depth: number): string => {
    if (!Array.isArray(v)) return fmt(v);
    const items =
      v.length > 2 * EDGE + 1
        ? [
            ...v.slice(0, EDGE).map((x) => render(x, depth + 1)),
            '...',
            ...v.slice(-EDGE).map((x) => render(x, depth + 1)),
          ]
        : v.map((x) => render(x, depth + 1));
    const nested = Array.isArray(v[0]);
    return `[${items.join(nested ? `,\n${' '.repeat(depth + 8)}` : ', ')}]`;
  };
  return `Tensor(${render(values, 0)}, ${header}${extra})`;
}
