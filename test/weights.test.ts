// The models that ship in weights/: each file is a reptok model file that loads, and has its model card beside it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

import { peekModelFile } from '../src/models/model-file.ts';
import { loadClassifierFile } from '../src/models/classifier.ts';
import { ROOT } from './helpers.ts';

const WEIGHTS = join(ROOT, 'weights');
const files = readdirSync(WEIGHTS, { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.safetensors'))
  .map((f) => join(WEIGHTS, f));

test('every shipped model file describes itself, loads, and has a model card', () => {
  assert.ok(files.length > 0, 'weights/ holds no model files');
  for (const file of files) {
    const d = peekModelFile(file);
    assert.ok(d.training?.command.startsWith('reptok train'), `${file}: no training command recorded`);
    assert.ok(existsSync(file.replace(/\.safetensors$/, '.md')), `${file}: no model card`);
    if (d.kind === 'classifier') loadClassifierFile(file).model.dispose();
  }
});
