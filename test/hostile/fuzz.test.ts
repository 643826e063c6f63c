// A short fuzzing run (tools/fuzz/fuzz.ts): seeded mutations of safetensors, .pth and image files and random fused-
// kernel shapes, each case in a supervised child. It must end with only loads and clean errors: no crash, no hang,
// no memory kill, no error message leaking JavaScript internals. (30 s here on the shared 2-core machine; run
// `npm run fuzz -- --seconds 1800` for a long one.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { ROOT } from '../helpers.ts';

test('30 s of fuzzing: no crashes, hangs, memory kills or leaked internals; peak RSS under 1 GB', () => {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'tools', 'fuzz', 'fuzz.ts'), '--seconds', '30', '--seed', '7'],
    { cwd: ROOT, encoding: 'utf8', timeout: 180_000 },
  );
  assert.equal(r.status, 0, `the fuzzer found failures:\n${r.stderr.slice(-3000)}`);
  const s = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  assert.equal(s.crashes + s.hangs + s.memory + s.internalErrors, 0);
  assert.ok(s.cases > 50, `only ${s.cases} cases ran`);
  assert.ok(s.loaded > 0 && s.cleanErrors > 0, 'the mutations should both keep some files valid and break others');
  assert.ok(s.peakRssMb < 1024, `peak RSS ${s.peakRssMb} MB`);
});
