// The README's example runs as printed and learns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

import { ROOT } from './helpers.ts';

test('examples/quickstart.ts (the README example) trains and the loss falls', () => {
  const out = execFileSync(process.execPath, ['--import', 'tsx', join(ROOT, 'examples', 'quickstart.ts'), '1000'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  const losses = [...out.matchAll(/loss (\d+\.\d+)/g)].map((m) => Number(m[1]));
  assert.equal(losses.length, 3);
  assert.ok(losses[2]! < losses[0]! / 5, out);
});
