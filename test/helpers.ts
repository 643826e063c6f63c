// Shared test helpers: fixture locations and numeric comparisons.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Tensor, arange, tensor, tidy } from '../src/index.ts';
import { loadSafetensors } from '../src/io/index.ts';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const DATA = join(ROOT, 'test', 'data');

/** The reference fixtures: REPTOK_FIXTURES, else ../shared/fixtures next to the repository. */
export function fixturesRoot(): string {
  return resolve(process.env.REPTOK_FIXTURES ?? join(ROOT, '..', 'shared', 'fixtures'));
}

export interface Fixture {
  dir: string;
  config: any;
  weightsPath: string;
  cases: Map<string, Tensor>;
}

/** Loads a fixture directory; a missing fixture is a failure, never a skip. */
export function loadFixture(name: string): Fixture {
  const dir = join(fixturesRoot(), name);
  for (const f of ['config.json', 'weights.safetensors', 'cases.safetensors']) {
    assert.ok(
      existsSync(join(dir, f)),
      `fixture ${join(dir, f)} is missing: set REPTOK_FIXTURES to the folder holding the reference fixtures`,
    );
  }
  return {
    dir,
    config: JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')),
    weightsPath: join(dir, 'weights.safetensors'),
    cases: loadSafetensors(join(dir, 'cases.safetensors')).tensors,
  };
}

export interface Tolerance {
  atol: number;
  rtol: number;
}

/**
 * Same dtype, same shape, and |actual − expected| ≤ atol + rtol·|expected| everywhere (exact equality for integer
 * and bool tensors). The dtype is checked, never converted: a float64 result must not pass for a float32 reference.
 */
export function assertClose(actual: Tensor, expected: Tensor, tol: Tolerance, what: string): void {
  assert.equal(actual.dtype, expected.dtype, `${what}: dtype ${actual.dtype} != expected ${expected.dtype}`);
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape [${actual.shape}] != expected [${expected.shape}]`);
  if (expected.numel === 0) return;
  tidy(() => {
    const exact = !(expected.dtype.startsWith('float') || expected.dtype === 'bfloat16');
    if (exact) {
      const eq = actual.eq(expected).all().item();
      assert.ok(eq, `${what}: values differ (exact comparison of ${expected.dtype})`);
      return;
    }
    const a = actual.to('float64');
    const e = expected.to('float64');
    const diff = a.sub(e).abs();
    const excess = diff.sub(e.abs().mul(tol.rtol).add(tol.atol));
    const worst = excess.max().item();
    if (!(worst <= 0)) {
      const maxDiff = diff.max().item();
      const at = diff.flatten().argmax().item();
      assert.fail(
        `${what}: max |diff| ${maxDiff.toExponential(3)} exceeds atol ${tol.atol} + rtol ${tol.rtol}·|expected| ` +
          `(flat index ${at}: got ${a.flatten().select(0, at).item()}, expected ${e.flatten().select(0, at).item()})`,
      );
    }
  });
}

/**
 * Finite-difference gradient check in float64: the autograd gradient of sum(fn(inputs) · w) (w random, fixed)
 * must match central differences for every element of every floating input.
 */
export function gradcheck(
  fn: (...x: Tensor[]) => Tensor,
  inputs: Tensor[],
  o: { eps?: number; atol?: number; rtol?: number; what?: string } = {},
): void {
  const eps = o.eps ?? 1e-6;
  const atol = o.atol ?? 1e-5;
  const rtol = o.rtol ?? 1e-3;
  tidy(() => {
    const xs = inputs.map((x) => (x.dtype === 'float64' ? x.detach().clone().requiresGrad_() : x));
    const out0 = fn(...xs);
    // fixed, non-uniform weights
    const w = arange(out0.numel, undefined, 1, { dtype: 'float64' }).remainder(7).add(0.5).reshape(out0.shape);
    const objective = (...x: Tensor[]): number =>
      tidy(() =>
        fn(...x)
          .mul(w)
          .sum()
          .item(),
      );
    out0.mul(w).sum().backward();
    xs.forEach((x, i) => {
      if (x.dtype !== 'float64') return;
      const analytic = (x.grad ?? x.detach().mul(0)).data<'float64'>();
      const base = x.detach().clone();
      const flat = base.data<'float64'>();
      for (let j = 0; j < flat.length; j++) {
        const at = (delta: number): number => {
          const v = Float64Array.from(flat);
          v[j] = v[j]! + delta;
          const xi = tensor(v, { shape: base.shape });
          return objective(...xs.map((y, k) => (k === i ? xi : y.detach())));
        };
        const numeric = (at(eps) - at(-eps)) / (2 * eps);
        const a = analytic[j]!;
        assert.ok(
          Math.abs(a - numeric) <= atol + rtol * Math.abs(numeric),
          `${o.what ?? 'gradcheck'}: input ${i} element ${j}: autograd ${a} vs finite difference ${numeric}`,
        );
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Optional capabilities: a test may skip only for one of these, after proving it absent (scripts/run-tests.mjs
// fails on any other skip). Each function fails the test when the capability is in fact there.
// ---------------------------------------------------------------------------------------------------------------

/** Proof that this process has no shared oneDNN (so F.linear runs aten::linear): libdnnl is not mapped. */
/**
 * The shapes the packed-weight tests of the oneDNN linear run (bf16-linear, packed-inference): a layer of 64 inputs
 * and 48 outputs on M rows, with or without bias, named for assertion messages.
 */
export const PACKED_LINEAR_CASES = [
  { M: 3, bias: true },
  { M: 40, bias: false },
  { M: 40, bias: true },
].map((c) => ({ ...c, what: `M = ${c.M}, ${c.bias ? 'with' : 'no'} bias` }));

export function onednnAbsent(): string {
  const maps = readFileSync('/proc/self/maps', 'utf8');
  assert.ok(
    !/\/libdnnl\.so/.test(maps),
    'runtimeInfo().onednnGemm is false although libdnnl.so is loaded: native/linear.cc did not find dnnl_sgemm',
  );
  return 'proven-absent: libdnnl.so is not loaded in this process (this libtorch has no shared oneDNN)';
}

/** Proof that reptok's malloc tuning is off for a reason it documents: the user tunes malloc, or this is not glibc. */
export function mallocTuningAbsent(): string {
  const header = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header;
  if (!header.glibcVersionRuntime) return 'proven-absent: not running on glibc (malloc tuning is glibc-only)';
  const user = ['MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_'].filter((k) => process.env[k] !== undefined);
  if (process.env.GLIBC_TUNABLES?.includes('glibc.malloc.')) user.push('GLIBC_TUNABLES');
  assert.ok(
    user.length > 0,
    'runtimeInfo().mallocTuning is false on glibc with no user malloc settings: mallopt failed',
  );
  return `proven-absent: the user tunes malloc (${user.join(', ')} set), so reptok leaves it alone`;
}
