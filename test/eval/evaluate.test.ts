// `evaluate` on tiny random models: every section of the report is there and finite, the protocol is stated, and
// the numbers depend on neither the batch size nor the thread count.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { getNumThreads, manualSeed, setNumThreads, type Tensor } from '../../src/engine/index.ts';
import { RepTok } from '../../src/pipeline/index.ts';
import { Classifier } from '../../src/models/classifier.ts';
import {
  DEFAULT_PROTOCOL,
  classifierFeatures,
  evaluate,
  evaluateTextToImage,
  type EvalReport,
} from '../../src/eval/evaluate.ts';
import { saveTinyModels, syntheticSplit, TINY_CLASSES } from '../tiny-models.ts';

const numbers = (r: EvalReport): number[] =>
  JSON.stringify({ ...r, seconds: {}, protocol: {} })
    .match(/-?\d+(\.\d+)?(e[-+]?\d+)?/g)!
    .map(Number);

test('evaluate reports every section with its protocol, independent of batch size and threads', () => {
  const files = saveTinyModels();
  const rt = RepTok.load({ tokenizer: files.tokenizer, generator: files.generator });
  manualSeed(3);
  const net = new Classifier({ imageChannels: 3, widths: [8, 8, 16], numClasses: 3 }).eval();
  const data = {
    name: 'synthetic',
    reference: syntheticSplit(12, 1),
    referenceSplit: 'test',
    train: syntheticSplit(12, 2),
  };
  const protocol = {
    ...DEFAULT_PROTOCOL,
    reconstructionImages: 6,
    samplesPerClass: 4,
    referenceImages: 12,
    steps: 2,
    interpolationPaths: 2,
    interpolationFrames: 4,
    segments: 2,
  };
  const run = (batchSize: number, threads: number) => {
    const before = getNumThreads();
    setNumThreads(threads);
    try {
      const { report, pictures } = evaluate(rt, net, classifierFeatures(net), data, { ...protocol, batchSize });
      for (const t of Object.values(pictures)) t?.dispose();
      return report;
    } finally {
      setNumThreads(before);
    }
  };
  const a = run(64, 2);
  assert.equal(a.protocol.featureSpace, 'reference classifier (penultimate layer, 16 dims)');
  assert.equal(a.protocol.referenceSplit, 'test');
  assert.deepEqual(Object.keys(a.models).sort(), ['generator', 'tokenizer']);
  assert.equal(a.reconstruction!.images, 6);
  assert.equal(a.generation!.samples, 12);
  assert.deepEqual(Object.keys(a.generation!.perClassAccuracy), TINY_CLASSES);
  assert.equal(a.generation!.flowValidationLoss.segments.length, 2);
  assert.equal(a.interpolation!.paths, 2);
  assert.equal(a.interpolation!.even, 1 / 3);
  for (const v of numbers(a)) assert.ok(Number.isFinite(v));
  for (const v of [a.reconstruction!.classifierAgreement, a.generation!.precision, a.generation!.recall])
    assert.ok(v >= 0 && v <= 1);
  // Other chunks and thread counts change float32 summation order only (measured: 6.5e-8 relative at most).
  const b = run(2, 1);
  const [na, nb] = [numbers(a), numbers(b)];
  assert.equal(na.length, nb.length);
  na.forEach((v, i) => assert.ok(Math.abs(v - nb[i]!) <= 1e-6 * Math.max(1, Math.abs(v)), `${i}: ${v} vs ${nb[i]}`));
  net.dispose();
  rt.dispose();
});

test('text-to-image evaluation: caption retrieval among the nearest real images, held-out prompts as pictures', () => {
  const files = saveTinyModels();
  const rt = RepTok.load({ tokenizer: files.tokenizer, t2i: files.t2i });
  const features = { name: "tokenizer's token space", embed: (x: Tensor) => rt.encode(x) };
  const protocol = { ...DEFAULT_PROTOCOL, steps: 2, batchSize: 4 };
  const t2i = { prompts: 3, samplesPerPrompt: 2, k: 2, heldOutPrompts: ['a red square'] };
  const { report, pictures } = evaluateTextToImage(rt, features, syntheticSplit(9, 5), protocol, t2i);
  assert.deepEqual(pictures.shape, [8, 3, 16, 16]);
  assert.equal(report.prompts, 3);
  assert.ok(report.captionRetrieval >= 0 && report.captionRetrieval <= 1);
  // With k = all 9 images every sample finds its prompt's caption among its neighbours.
  const all = evaluateTextToImage(rt, features, syntheticSplit(9, 5), protocol, { ...t2i, k: 9 });
  assert.equal(all.report.captionRetrieval, 1);
  for (const t of [pictures, all.pictures]) t.dispose();
  assert.throws(
    () => evaluateTextToImage(rt, features, { ...syntheticSplit(3, 1), captions: undefined }, protocol, t2i),
    /needs a data set with captions/,
  );
  rt.dispose();
});
