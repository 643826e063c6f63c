// The reference classifier: `reptok train classifier` learns a separable synthetic data set, exports a file that
// loads back into the same network, and its features and predictions do not depend on the chunk size.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { manualSeed, randn, Generator } from '../../src/engine/index.ts';
import { resolveTrainConfig, train } from '../../src/train/presets.ts';
import { Classifier, loadClassifierFile, saveClassifier } from '../../src/models/classifier.ts';
import { classify } from '../../src/eval/classify.ts';
import { syntheticFolder } from './fixtures.ts';

test('reptok train classifier learns a separable data set and exports a loadable classifier', async () => {
  manualSeed(0);
  const dir = mkdtempSync(join(tmpdir(), 'reptok-classifier-'));
  const file = join(dir, 'config.json');
  writeFileSync(
    file,
    JSON.stringify({
      data: `folder:${await syntheticFolder()}`,
      imageSize: 16,
      hflip: 0, // a flip turns 'left' into 'right'
      classifier: { widths: [8, 8, 16] },
      batchSize: 16,
      lr: 3e-3,
      warmupSteps: 2,
      emaDecay: 0,
      threads: 1,
      prefetch: 2,
      valEvery: 1000,
      checkpointEvery: 1000,
      logEvery: 1000,
      val: { images: 4 },
    }),
  );
  const config = resolveTrainConfig('classifier', 'fmnist-classifier', { file });
  const r = await train('classifier', config, { out: join(dir, 'run'), steps: 40, log: () => {} });
  assert.ok((r.final!.test_accuracy as number) >= 0.9, `test accuracy ${r.final!.test_accuracy}`);
  const { model, data, training } = loadClassifierFile(r.final!.classifier as string);
  assert.deepEqual(data.classes, ['left', 'right']);
  assert.equal(training?.step, 40);
  assert.deepEqual(model.config, { widths: [8, 8, 16], imageChannels: 3, numClasses: 2 });
  model.dispose();
});

test('classifier features do not depend on the chunk size; files round-trip; bad files are named', () => {
  manualSeed(1);
  const net = new Classifier({ imageChannels: 1, widths: [8, 8, 16], numClasses: 3 }).eval();
  const x = randn([10, 1, 12, 12], { generator: new Generator({ seed: 2 }) });
  const a = classify(net, x, 3);
  const b = classify(net, x, 256);
  assert.ok(a.features.sub(b.features).abs().max().item() < 1e-5);
  assert.ok(a.predictions.equal(b.predictions));
  const path = join(mkdtempSync(join(tmpdir(), 'reptok-classifier-')), 'c.safetensors');
  saveClassifier(path, net, { data: { classes: ['a', 'b', 'c'] } });
  const back = loadClassifierFile(path);
  assert.ok(classify(back.model, x).features.equal(b.features));
  assert.throws(() => saveClassifier(path, net, { data: { classes: ['a'] } }), /1 class names for 3 classes/);
  const other = join(dirname(path), 'other.safetensors');
  writeFileSync(other, Buffer.from([8, 0, 0, 0, 0, 0, 0, 0, ...Buffer.from('{}      ')]));
  assert.throws(() => loadClassifierFile(other), /other\.safetensors: expected a reptok classifier/);
});
