#!/usr/bin/env node
// Runs the test suite with Node's built-in runner (TypeScript through tsx). Arguments narrow the files:
//   node scripts/run-tests.mjs            every test/**/*.test.ts
//   node scripts/run-tests.mjs engine     only files whose path contains "engine"
//
// What makes the run fail besides a failing test:
// - A skip, unless its reason starts with `proven-absent:` — a test may only skip for a missing optional capability
//   that it has proven absent (e.g. `t.skip('proven-absent: libdnnl.so.2 is not mapped into this process')`).
//   A todo is always a failure. Every skip is printed with its reason at the end of the run.
// - A test that runs longer than REPTOK_TEST_TIMEOUT_S seconds (default 120): scripts/test-watchdog.mjs, preloaded
//   into each file's process, names it and kills that process.
// - A whole run longer than REPTOK_SUITE_TIMEOUT_S seconds (default 1800): the runner kills it.
// Skips are read from a TAP copy of the results (--test-reporter=tap to a temporary file) while the spec reporter
// prints to the terminal as usual.
//
// Flags used, and the Node version that introduced each: --import (18.18), --test-reporter and
// --test-reporter-destination (18.15), root-level beforeEach/afterEach hooks (18.8), --test-concurrency (20.10);
// package.json's engines.node says >=20.10 accordingly.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const walk = (d) =>
  readdirSync(d).flatMap((f) => (statSync(join(d, f)).isDirectory() ? walk(join(d, f)) : [join(d, f)]));
const filters = process.argv.slice(2);
const files = walk(join(root, 'test'))
  .filter((f) => f.endsWith('.test.ts'))
  .map((f) => relative(root, f))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}

const suiteLimitS = Number(process.env.REPTOK_SUITE_TIMEOUT_S ?? 1800);
const tmp = mkdtempSync(join(tmpdir(), 'reptok-tests-'));
const tap = join(tmp, 'results.tap');
// One file at a time: each file loads libtorch and uses every core, so running files in parallel only thrashes.
const child = spawn(
  process.execPath,
  [
    '--import',
    'tsx',
    '--import',
    './scripts/test-watchdog.mjs',
    '--test',
    '--test-concurrency=1',
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    '--test-reporter=tap',
    `--test-reporter-destination=${tap}`,
    ...files,
  ],
  { cwd: root, stdio: 'inherit', detached: true },
);
let timedOut = false;
const timer = setTimeout(() => {
  timedOut = true;
  process.kill(-child.pid, 'SIGKILL'); // the runner and every test file's process (its own process group)
}, suiteLimitS * 1000);
// The tests run in their own process group (so that a timeout can end them all): pass on an interrupt.
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.kill(-child.pid, sig));
const status = await new Promise((done) => child.on('exit', (code, signal) => done(signal ? 1 : (code ?? 1))));
clearTimeout(timer);

// ---------------------------------------------------------------------------------------------------------------
// Skips and todos from the TAP copy: "ok N - name # SKIP reason" / "# TODO reason", at any nesting depth
// ---------------------------------------------------------------------------------------------------------------

const directives = [];
let tapText = '';
try {
  tapText = readFileSync(tap, 'utf8');
} catch {
  // no TAP file: the run died before reporting anything; the status below already says it failed
}
rmSync(tmp, { recursive: true, force: true });
for (const line of tapText.split('\n')) {
  const m = /^\s*(?:not )?ok \d+ - (.*?) # (SKIP|TODO)\b ?(.*)$/.exec(line);
  if (m) directives.push({ name: m[1], kind: m[2], reason: m[3].trim() });
}
const unproven = directives.filter((d) => d.kind === 'TODO' || !d.reason.startsWith('proven-absent:'));
if (directives.length > 0) {
  console.log('\nskipped tests:');
  for (const d of directives)
    console.log(`  ${unproven.includes(d) ? '✖' : '-'} ${d.name}: ${d.kind} ${d.reason || '(no reason given)'}`);
}
if (unproven.length > 0)
  console.error(
    `\n${unproven.length} test(s) skipped or marked todo without proof: a test may only skip with a reason starting ` +
      `'proven-absent:' after proving that an optional capability is missing (see scripts/run-tests.mjs)`,
  );
if (timedOut) console.error(`\nthe suite ran longer than ${suiteLimitS} s (REPTOK_SUITE_TIMEOUT_S) and was killed`);
process.exit(status !== 0 || unproven.length > 0 || timedOut ? 1 : 0);
