// The inference side is device-clean: RepTok's encode, decode, reconstruct, interpolate, sample and generate,
// `reptok eval`'s evaluate and evaluateTextToImage, the demo page builder and the web demo's inference jobs run with
// every tensor factory required to name its device (`withExplicitDevices`; across awaits `withExplicitDevicesAsync`),
// so a tensor that would stay on the CPU next to models on a GPU (noise, labels, time grids, filters, request
// tokens) fails here already, on this CPU-only libtorch. Models are built on the CPU and moved, outside the check;
// data read from images or data sets is CPU data (made by `fromBytes`), moved to the models' device where it enters
// them. And every command that runs models takes --device, with a clear error where libtorch has no CUDA.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  cuda,
  deviceProblem,
  manualSeed,
  withExplicitDevices,
  withExplicitDevicesAsync,
  type Tensor,
} from '../../src/engine/index.ts';
import { RepTok } from '../../src/pipeline/index.ts';
import { Classifier } from '../../src/models/classifier.ts';
import { imagesTensor } from '../../src/data/image-array.ts';
import { DEFAULT_PROTOCOL, classifierFeatures, evaluate, evaluateTextToImage } from '../../src/eval/evaluate.ts';
import { modelSources } from '../../src/cli/model-options.ts';
import { reptok } from '../cli/run-cli.ts';
import { buildSet } from '../../src/demo/build.ts';
import { saveTinyModels, syntheticSplit } from '../tiny-models.ts';
import { testImage, tinyModelFolder } from '../server/serve-helpers.ts';
import { load, run } from '../../src/server/inference-worker.ts';
import type { Job } from '../../src/server/jobs.ts';

const files = saveTinyModels();

const all = (n: number) => Int32Array.from({ length: n }, (_, i) => i);
const disposeAll = (...ts: (Tensor | undefined)[]) => ts.forEach((t) => t?.dispose());

test('RepTok encode, decode, reconstruct, interpolate, sample and generate name the device of every tensor', () => {
  const rt = RepTok.load({ tokenizer: files.tokenizer, generator: files.generator, device: 'cpu' });
  const t2i = RepTok.load({ tokenizer: files.tokenizer, t2i: files.t2i, device: 'cpu' });
  const images = imagesTensor(syntheticSplit(3, 1), all(3)); // data: made on the CPU, outside the check
  withExplicitDevices(() => {
    const d = { steps: 2, seed: 1 };
    const tokens = rt.encode(images);
    const decoded = rt.decode(tokens, { ...d, batchSize: 2 });
    const recon = rt.reconstruct(images, d);
    const between = rt.interpolate(images.select(0, 0), images.select(0, 1), { ...d, frames: 3 });
    const ofTokens = rt.interpolate(tokens.select(0, 0), tokens.select(0, 1), { ...d, frames: 3, method: 'lerp' });
    assert.deepEqual(rt.classIndices(['square', 2]), [1, 2]);
    const sampled = rt.sample({ ...d, classes: ['circle', 'triangle'], n: 2 });
    const generated = t2i.generate(['a red circle'], { ...d, n: 2 });
    assert.deepEqual(decoded.shape, [3, 3, 16, 16]);
    assert.deepEqual(between.images.shape, [3, 3, 16, 16]);
    assert.deepEqual(sampled.images.shape, [4, 3, 16, 16]);
    assert.deepEqual(generated.images.shape, [2, 3, 16, 16]);
    for (const out of [decoded, recon, between.images, ofTokens.images, sampled.images, generated.images])
      assert.equal(out.device, rt.device);
    disposeAll(tokens, decoded, recon, between.images, between.tokens, ofTokens.images, ofTokens.tokens);
    disposeAll(sampled.images, sampled.tokens, generated.images, generated.tokens);
  });
  images.dispose();
  rt.dispose();
  t2i.dispose();
});

test('reptok eval (evaluate and evaluateTextToImage) names the device of every tensor it makes', () => {
  const rt = RepTok.load({ tokenizer: files.tokenizer, generator: files.generator, device: 'cpu' });
  const t2i = RepTok.load({ tokenizer: files.tokenizer, t2i: files.t2i, device: 'cpu' });
  manualSeed(3);
  const net = new Classifier({ imageChannels: 3, widths: [8, 8, 16], numClasses: 3 }).eval(); // built, then moved
  net.to({ device: rt.device });
  const data = {
    name: 'synthetic',
    reference: syntheticSplit(8, 1),
    referenceSplit: 'test',
    train: syntheticSplit(8, 2),
  };
  const protocol = {
    ...DEFAULT_PROTOCOL,
    reconstructionImages: 4,
    samplesPerClass: 4,
    referenceImages: 8,
    steps: 2,
    interpolationPaths: 1,
    interpolationFrames: 3,
    segments: 2,
    batchSize: 4,
  };
  withExplicitDevices(() => {
    const { report, pictures } = evaluate(rt, net, classifierFeatures(net), data, protocol);
    assert.ok(Number.isFinite(report.reconstruction!.rfd) && Number.isFinite(report.generation!.fd));
    assert.equal(report.generation!.flowValidationLoss.segments.length, 2);
    assert.equal(report.interpolation!.paths, 1);
    disposeAll(...Object.values(pictures));
    const features = { name: "the tokenizer's token space", embed: (x: Tensor) => t2i.encode(x) };
    const tti = { prompts: 3, samplesPerPrompt: 2, k: 2, heldOutPrompts: ['a red square'] };
    const out = evaluateTextToImage(t2i, features, data.train, protocol, tti);
    assert.ok(out.report.captionRetrieval >= 0 && out.report.captionRetrieval <= 1);
    out.pictures.dispose();
  });
  net.dispose();
  rt.dispose();
  t2i.dispose();
});

test('the demo page builder names the device of every tensor it makes (reading and writing images too)', async () => {
  const dir = await tinyModelFolder();
  const [tokenizer, generator, t2i] = ['tokenizer', 'generator', 't2i'].map((k) => join(dir, `${k}.safetensors`));
  const sources = { tokenizer, generator, t2i, device: 'cpu' };
  const rt = RepTok.load(sources); // built on the CPU, then moved, outside the check
  const out = mkdtempSync(join(tmpdir(), 'reptok-demo-dev-'));
  const o = { out, steps: 2, images: 4, frames: 3, guidanceScales: [1, 2], perClass: 1, prompts: ['a red circle'] };
  // the whole section, awaits included: sample images read, decoded, tiled and written under the check
  const report = await withExplicitDevicesAsync(() => buildSet({ name: 'tiny', dir, sources }, rt, o));
  assert.deepEqual(
    report.parts.map((p) => [p.title, p.pictures.length > 0]),
    [
      ['One-token reconstructions', true],
      ['Interpolations', true],
      ['Class-conditional samples', true],
      ['Text to image', true],
    ],
  );
  rt.dispose();
});

test("the web demo's inference process names the device of every tensor its jobs make", async () => {
  const dir = await tinyModelFolder();
  const [tokenizer, generator, t2i] = ['tokenizer', 'generator', 't2i'].map((k) => join(dir, `${k}.safetensors`));
  await load({
    sets: [{ name: 'tiny', dir, sources: { tokenizer, generator, t2i, device: 'cpu' } }],
    threads: 0,
    references: 4,
  });
  const base = { set: 'tiny', steps: 2, seed: 0 };
  const image = new Uint8Array(await testImage(1, 16, 16));
  const token = Float32Array.from({ length: 32 }, (_, i) => Math.sin(i));
  const jobs: Job[] = [
    { ...base, kind: 'encode', image },
    { ...base, kind: 'reconstruct', image, neighbours: 2 },
    { ...base, kind: 'interpolate', a: token, b: token.map((v) => -v), frames: 3 },
    { ...base, kind: 'sample', class: 'square', guidance: 2, n: 2 },
    { ...base, kind: 'generate', prompt: 'a red circle', guidance: 2, n: 2 },
  ];
  for (const job of jobs) {
    // the whole job, awaits included (the upload decoded, the PNGs encoded), under the check
    const result = await withExplicitDevicesAsync(() => run(job, Infinity));
    assert.ok(result.images?.length || result.token?.length === 32, job.kind);
  }
});

test('every command that runs models takes --device: cpu, cuda or cuda:N, a clear error without CUDA', async () => {
  for (const name of [
    'encode',
    'decode',
    'reconstruct',
    'interpolate',
    'sample',
    'generate',
    'eval',
    'demo',
    'serve',
  ]) {
    const { spec } = await import(`../../src/cli/commands/${name}.ts`);
    assert.equal(spec.options.device?.type, 'string', `reptok ${name} --device`);
  }
  const log = () => {};
  assert.equal(modelSources({ model: files.dir, device: 'cpu' }, log).device, 'cpu');
  assert.throws(
    () => modelSources({ model: files.dir, device: 'gpu' }, log),
    /--device gpu: not a device here: use 'cpu', 'cuda' or 'cuda:N'/,
  );
  if (cuda.deviceCount() > 0) assert.equal(modelSources({ model: files.dir, device: 'cuda' }, log).device, 'cuda:0');
  else {
    assert.throws(
      () => modelSources({ model: files.dir, device: 'cuda:1' }, log),
      /--device cuda:1: this libtorch has no CUDA/,
    );
    // as the user sees it: a usage error (exit 2) before anything is loaded or trained
    for (const args of [
      ['sample', '--model', files.dir, '--all'],
      ['demo', '--train', '--out', mkdtempSync(join(tmpdir(), 'reptok-demo-dev-'))],
    ]) {
      const r = await reptok(...args, '--device', 'cuda');
      assert.equal(r.code, 2, r.err);
      assert.match(r.err, /--device cuda: this libtorch has no CUDA .*build against a CUDA libtorch with LIBTORCH/);
    }
  }
});

test('RepTok refuses a device this libtorch cannot run on, before it reads a file, saying what to do', () => {
  const count = cuda.deviceCount();
  assert.equal(deviceProblem('cpu'), null);
  for (const bad of ['gpu', 'cuda:x', 'cpu:0', 'tpu'])
    assert.throws(
      () => RepTok.load({ tokenizer: files.tokenizer, device: bad }),
      new RegExp(`RepTok: device '${bad}': not a device here`),
    );
  // a CUDA device past the ones there are (all of them, on a CPU-only libtorch); the file does not exist, so the
  // message proves the check came first
  const device = `cuda:${count}` as const;
  const expected =
    count === 0
      ? /RepTok: device 'cuda:0': this libtorch has no CUDA .*build against a CUDA libtorch with LIBTORCH/
      : new RegExp(`RepTok: device 'cuda:${count}': this machine has ${count} CUDA device`);
  assert.throws(() => RepTok.load({ tokenizer: join(tmpdir(), 'no-such-tokenizer.safetensors'), device }), expected);
  const rt = RepTok.load({ tokenizer: files.tokenizer, device: 'cpu' });
  assert.throws(() => new RepTok(rt.models, device), expected);
  rt.dispose();
});
