// The whole tree is formatted by Prettier (config in .prettierrc.json); `npm run format` fixes it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { ROOT } from './helpers.ts';

test('prettier --check finds every file formatted', () => {
  const bin = join(ROOT, 'node_modules', 'prettier', 'bin', 'prettier.cjs');
  const r = spawnSync(process.execPath, [bin, '--check', '.'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, `run \`npm run format\`:\n${r.stdout}${r.stderr}`);
});
