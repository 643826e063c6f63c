// Shared test helpers: fixture locations and numeric comparisons.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Tensor, tidy } from '../src/index.ts';
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
    assert.ok(existsSync(join(dir, f)), `fixture ${join(dir, f)} is missing: set REPTOK_FIXTURES to the folder holding the reference fixtures`);
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

/** |actual − expected| ≤ atol + rtol·|expected| everywhere (exact equality for integer and bool tensors). */
export function assertClose(actual: Tensor, expected: Tensor, tol: Tolerance, what: string): void {
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape [${actual.shape}] != expected [${expected.shape}]`);
  tidy(() => {
    const exact = !(expected.dtype.startsWith('float') || expected.dtype === 'bfloat16');
    if (exact) {
      const eq = actual.to(expected.dtype).eq(expected).all().item();
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
      assert.fail(`${what}: max |diff| ${maxDiff.toExponential(3)} exceeds atol ${tol.atol} + rtol ${tol.rtol}·|expected| (flat index ${at}: got ${a.flatten().select(0, at).item()}, expected ${e.flatten().select(0, at).item()})`);
    }
  });
}
