// Does any test depend on *which* values a fixture set holds, rather than on where it is and how it is laid out?
//
//   npx tsx tools/fixture-independence.ts [REPTOK_FIXTURES folder]
//
// A new fixture set with other random weights and inputs needs the reference implementations, which are not
// installable here. What this tool proves instead, for every test file that reads REPTOK_FIXTURES, by running it
// against three copies of the fixture set in a temporary folder:
//   copy      an exact copy elsewhere: every test passes (nothing reads the original location or a committed copy);
//   weights   every floating tensor of every weights.safetensors changed by one elementwise map (x -> 1.05·x + 0.01,
//             so equal tensors in two layouts stay equal): a test whose outputs come from the fixture's weights fails;
//   cases     every floating tensor of every cases.safetensors changed the same way: a test that compares with the
//             fixture's inputs or expected values fails.
// A test that still passes with changed weights but fails with changed cases compares fixture expectations with
// weights from elsewhere (the mix the suite must not contain) — unless it needs no weights at all; one that fails
// with changed weights but passes with changed cases compares fixture weights with expectations from elsewhere.
// Those are listed for review; the tool exits 1 if the exact copy fails anything.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import { tidy } from '../src/index.ts';
import { loadSafetensors, saveSafetensors } from '../src/io/index.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = process.argv[2] ?? process.env.REPTOK_FIXTURES ?? join(root, '..', 'shared', 'fixtures');
const walk = (d: string): string[] =>
  readdirSync(d).flatMap((f) => (statSync(join(d, f)).isDirectory() ? walk(join(d, f)) : [join(d, f)]));

const testFiles = walk(join(root, 'test'))
  .filter((f) => f.endsWith('.test.ts') && /loadFixture\(|fixturesRoot\(/.test(readFileSync(f, 'utf8')))
  .map((f) => relative(root, f))
  .sort();

/** A copy of the fixture set in which every floating tensor of the files named `file` is mapped elementwise. */
function copyWith(label: string, file: string | null): string {
  const dir = join(mkdtempSync(join(tmpdir(), `reptok-fixtures-${label}-`)), 'fixtures');
  cpSync(source, dir, { recursive: true });
  if (file)
    for (const path of walk(dir).filter((f) => f.endsWith(`/${file}`))) {
      const { tensors, metadata } = loadSafetensors(path);
      const changed = tidy(
        () =>
          new Map(
            [...tensors].map(([k, t]) => [k, t.dtype.startsWith('float') ? t.mul(1.05).add(0.01).to(t.dtype) : t]),
          ),
      );
      saveSafetensors(path, changed, metadata);
    }
  return dir;
}

/** Runs the fixture tests against `fixtures`; returns each top-level test's outcome by "file > name". */
function run(fixtures: string): Map<string, boolean> {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=tap', ...testFiles],
    { cwd: root, encoding: 'utf8', env: { ...process.env, REPTOK_FIXTURES: fixtures }, maxBuffer: 1 << 28 },
  );
  const results = new Map<string, boolean>();
  for (const m of r.stdout.matchAll(/^(not )?ok \d+ - (.*)$/gm)) results.set(m[2]!, !m[1]);
  return results;
}

const variants = { copy: copyWith('copy', null), weights: copyWith('weights', 'weights.safetensors') };
const cases = copyWith('cases', 'cases.safetensors');
console.log(`fixture tests (${testFiles.length} files): ${testFiles.join(', ')}`);
const outcome = {
  copy: run(variants.copy),
  weights: run(variants.weights),
  cases: run(cases),
};
for (const d of [variants.copy, variants.weights, cases]) rmSync(dirname(d), { recursive: true, force: true });

const mark = (ok: boolean | undefined): string => (ok === undefined ? '?' : ok ? 'pass' : 'FAIL');
console.log('\ncopy  weights cases  test');
let copyFailures = 0;
const review: string[] = [];
for (const [name, ok] of outcome.copy) {
  const [w, c] = [outcome.weights.get(name), outcome.cases.get(name)];
  console.log(`${mark(ok).padEnd(6)}${mark(w).padEnd(8)}${mark(c).padEnd(7)}${name}`);
  if (!ok) copyFailures++;
  if (w && c === false) review.push(`${name}: fixture expectations without fixture weights (or needs no weights)`);
  if (w === false && c) review.push(`${name}: fixture weights without fixture expectations`);
}
console.log(
  review.length ? `\nto review:\n  ${review.join('\n  ')}` : '\nno test mixes fixture values with other values',
);
if (copyFailures) console.error(`\n${copyFailures} test(s) fail on an exact copy of the fixture set`);
process.exit(copyFailures ? 1 : 0);
