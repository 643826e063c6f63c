// Memory scopes. Tensors own native memory; `tidy(fn)` frees every tensor created while `fn` runs, except the
// ones it returns (which move to the enclosing scope) and the ones marked with `keep()`. Tensors created outside
// any scope live until `dispose()` or until the garbage collector finds them unreachable.

export interface Disposable {
  dispose(): void;
  readonly isDisposed: boolean;
}

interface Tracked extends Disposable {
  kept?: boolean;
}

let current: Tracked[] | null = null;
const outer: (Tracked[] | null)[] = [];

/** Called by the Tensor constructor. */
export function track(t: Tracked): void {
  if (current !== null) current.push(t);
}

/** Exempts tensors from every enclosing `tidy` (model parameters, optimizer state, caches). */
export function keep<T extends Disposable>(t: T): T {
  (t as Tracked).kept = true;
  return t;
}

function collect(value: unknown, into: Set<unknown>, depth = 0): void {
  if (value === null || typeof value !== 'object' || depth > 4) return;
  if ('dispose' in value && 'isDisposed' in value) {
    into.add(value);
    return;
  }
  if (Array.isArray(value)) for (const v of value) collect(v, into, depth + 1);
  else if (value instanceof Map) for (const v of value.values()) collect(v, into, depth + 1);
  else if (Object.getPrototypeOf(value) === Object.prototype)
    for (const v of Object.values(value)) collect(v, into, depth + 1);
}

/**
 * Runs `fn` and disposes every tensor it created that is not part of its result. The result may be a tensor, or
 * tensors inside arrays, Maps and plain objects (a few levels deep). `fn` must be synchronous.
 */
export function tidy<T>(fn: () => T): T {
  const scope: Tracked[] = [];
  outer.push(current);
  current = scope;
  let result: T;
  try {
    result = fn();
  } catch (e) {
    current = outer.pop()!;
    for (const t of scope) if (!t.kept) t.dispose();
    throw e;
  }
  current = outer.pop()!;
  if (result instanceof Promise) {
    for (const t of scope) if (!t.kept) t.dispose();
    throw new TypeError(
      'tidy(fn): fn returned a Promise; scopes are synchronous. Await outside tidy and use tidy inside each step.',
    );
  }
  const returned = new Set<unknown>();
  collect(result, returned);
  for (const t of scope) {
    if (t.kept) continue;
    if (returned.has(t)) current?.push(t);
    else t.dispose();
  }
  return result;
}
