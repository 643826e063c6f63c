// The training precision: 'auto' (the default) resolves by the hardware when a run starts — bf16 autocast on CPUs
// that multiply bfloat16 natively, float32 elsewhere — and the run logs and stores the resolved value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { bf16Support } from '../../src/index.ts';
import { COMMON_DEFAULTS } from '../../src/train/config.ts';
import { precisionReason, resolvePrecision } from '../../src/train/autocast.ts';
import { train } from '../../src/train/presets.ts';
import { stageConfig, syntheticFolder, tinyConfigs } from './fixtures.ts';

const expectedAuto = bf16Support().native ? 'bf16' : 'fp32';

test("precision: 'auto' by default; bf16 on CPUs with native bf16 products, float32 elsewhere and on CUDA", () => {
  assert.equal(COMMON_DEFAULTS.precision, 'auto');
  assert.equal(resolvePrecision('auto'), expectedAuto, precisionReason());
  assert.equal(resolvePrecision('auto', 'cuda'), 'fp32');
  assert.equal(resolvePrecision('auto', 'cuda:1'), 'fp32');
  assert.equal(resolvePrecision('fp32'), 'fp32');
  assert.equal(resolvePrecision('bf16'), 'bf16');
  assert.match(precisionReason(), bf16Support().native ? /natively: (amx|avx512_bf16)/ : /no native bfloat16/);
  assert.throws(
    () => stageConfig('generator', { precision: 'fp16' }),
    /'precision' must be one of 'auto', 'fp32', 'bf16', got 'fp16'/,
  );
});

test('a run with the default precision logs and stores the resolved one; --set precision=fp32 forces float32', async () => {
  const ssl = tinyConfigs(`folder:${await syntheticFolder()}`).ssl as object;
  for (const [overrides, expected] of [
    [{}, expectedAuto],
    [{ precision: 'fp32' }, 'fp32'],
  ] as const) {
    const out = mkdtempSync(join(tmpdir(), 'reptok-precision-'));
    const lines: string[] = [];
    await train('ssl', stageConfig('ssl', { ...ssl, ...overrides }), { out, steps: 1, log: (m) => lines.push(m) });
    const recorded = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    assert.equal(recorded.precision, expected, 'config.json holds the resolved precision');
    const said = lines.find((l) => l.startsWith('precision: '));
    if ('precision' in overrides) assert.equal(said, undefined, 'an explicit precision needs no explanation');
    else assert.equal(said, `precision: ${expected} (auto: ${precisionReason()})`);
  }
});
