// The recipes of the shipped models (scripts/weights-recipes.mjs) name existing stages and presets, and their
// overrides resolve to valid configs: a typo would otherwise surface hours into `node scripts/train-weights.mjs`.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { FAMILIES } from '../../scripts/weights-recipes.mjs';
import { STAGES, resolveTrainConfig, type StageName } from '../../src/train/presets.ts';

test('every shipped-model recipe resolves to a valid training config', () => {
  for (const [family, recipes] of Object.entries(FAMILIES)) {
    const made = new Set<string>();
    for (const r of recipes) {
      assert.ok(STAGES.includes(r.stage as StageName), `${family}/${r.model}: stage ${r.stage}`);
      for (const m of r.sets.flatMap((s) => [...s.matchAll(/\{file:(\w+)\}/g)].map((x) => x[1]!)))
        assert.ok(made.has(m), `${family}/${r.model} uses ${m} before it is trained`);
      const sets = r.sets.map((s) => s.replace(/\{file:(\w+)\}/, '/models/$1.safetensors'));
      const c = resolveTrainConfig(r.stage as StageName, r.preset, { sets });
      assert.equal(c.stage, r.stage);
      made.add(r.model);
    }
  }
});
