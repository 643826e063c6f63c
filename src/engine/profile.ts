// Operator-level profiling of whole steps: which ATen operators (forward, backward, optimizer) take the time.
import { native, type OpProfile } from './native.ts';

export type { OpProfile };

/**
 * Runs `fn` with the operator profiler on; returns its result and per-operator timings (by self time). With
 * `shapes`, operators are told apart by their input shapes ("aten::mm[64x384, 384x1152]").
 */
export function profile<T>(fn: () => T, o: { shapes?: boolean } = {}): { result: T; ops: OpProfile[] } {
  native.profilerStart(o.shapes ?? false);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    native.profilerStop();
    throw e;
  }
  return { result, ops: native.profilerStop() };
}

/** A fixed-width table of the top operators, for logs. */
export function formatProfile(ops: OpProfile[], top = 20): string {
  const total = ops.reduce((s, o) => s + o.selfUs, 0);
  const w = Math.min(90, Math.max(44, ...ops.slice(0, top).map((o) => o.name.length)));
  const lines = [
    `${'operator'.padEnd(w)} ${'calls'.padStart(7)} ${'self ms'.padStart(10)} ${'self %'.padStart(7)} ` +
      `${'total ms'.padStart(10)}`,
  ];
  for (const o of ops.slice(0, top)) {
    lines.push(
      `${o.name.slice(0, w).padEnd(w)} ${String(o.calls).padStart(7)} ${(o.selfUs / 1000).toFixed(2).padStart(10)} ` +
        `${((100 * o.selfUs) / total).toFixed(1).padStart(7)} ${(o.totalUs / 1000).toFixed(2).padStart(10)}`,
    );
  }
  lines.push(
    `${'all operators'.padEnd(w)} ${String(ops.reduce((s, o) => s + o.calls, 0)).padStart(7)} ` +
      `${(total / 1000).toFixed(2).padStart(10)}`,
  );
  return lines.join('\n');
}
