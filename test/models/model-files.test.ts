// Model files describe themselves: each model's save/load pair round-trips the weights (from a path and from the
// file's bytes), and the metadata holds the architecture, the data, the training command and step, and the version.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { Generator, full, noGrad, rand, randn, tensor, tidy } from '../../src/index.ts';
import {
  loadEncoder,
  loadGenerator,
  loadTextToImage,
  loadTokenizer,
  loadTokenizerFile,
  loadGeneratorFile,
  loadTextToImageFile,
  peekModelFile,
} from '../../src/models/index.ts';
import { REPTOK_VERSION } from '../../src/version.ts';
import {
  TINY_CAPTIONS,
  TINY_CLASSES,
  saveTinyModels,
  tinyGenerator,
  tinyTextToImage,
  tinyTokenizer,
} from '../tiny-models.ts';

const files = saveTinyModels();

test('every model file holds its architecture, data, training and version', () => {
  for (const kind of ['encoder', 'tokenizer', 'generator', 't2i'] as const) {
    const d = peekModelFile<any>(files[kind]);
    assert.equal(d.kind, kind);
    assert.equal(d.reptok, REPTOK_VERSION);
    assert.deepEqual(d.training, { command: 'test/tiny-models.ts', step: 0 });
    assert.deepEqual(d.data.imageSize, [16, 16]);
    assert.equal(d.data.channels, 3);
    assert.ok(d.config && typeof d.config === 'object', `${kind}: config`);
  }
  assert.deepEqual(peekModelFile(files.tokenizer).data.valueRange, [-1, 1]);
  assert.deepEqual(peekModelFile(files.generator).data.classes, TINY_CLASSES);
  const vocab = peekModelFile(files.t2i).data.vocabulary!;
  for (const w of ['red', 'circle', 'triangle']) assert.ok(vocab.includes(w), `vocabulary has '${w}'`);
});

test('tokenizer, generator, text-to-image and encoder load back with the same weights, from paths and bytes', () => {
  noGrad(() =>
    tidy(() => {
      const x = rand([2, 3, 16, 16], { generator: new Generator({ seed: 1 }) })
        .mul(2)
        .sub(1);
      const fresh = tinyTokenizer(); // a different random init: the loaded one must not equal it
      for (const source of [files.tokenizer, readFileSync(files.tokenizer)]) {
        const tok = loadTokenizer(source);
        const again = loadTokenizerFile(files.tokenizer).model;
        assert.ok(tok.encode(x).allclose(again.encode(x), 0, 0));
        assert.ok(!tok.encode(x).allclose(fresh.encode(x)));
        const noise = randn([2, ...tok.gridShape], { generator: new Generator({ seed: 2 }) });
        assert.ok(
          tok
            .decode(tok.encode(x), { steps: 2, noise })
            .images.allclose(again.decode(again.encode(x), { steps: 2, noise }).images, 0, 0),
        );
        tok.dispose();
        again.dispose();
      }
      fresh.dispose();

      const z = randn([2, 1, 32], { generator: new Generator({ seed: 3 }) });
      const t = full([2], 0.5);
      const y = tensor([0, 2], { dtype: 'int64' });
      const g1 = loadGenerator(files.generator);
      const g2 = loadGeneratorFile(readFileSync(files.generator)).model;
      assert.ok(g1.forward(z, t, { y }).allclose(g2.forward(z, t, { y }), 0, 0));
      assert.ok(!g1.forward(z, t, { y }).allclose(tinyGenerator().forward(z, t, { y })));

      const m1 = loadTextToImage(files.t2i);
      const m2 = loadTextToImageFile(readFileSync(files.t2i)).model;
      const v = (m: typeof m1) => m.generator.forward(z, t, m.encode(TINY_CAPTIONS.slice(0, 2)));
      assert.ok(v(m1).allclose(v(m2), 0, 0));
      assert.ok(!v(m1).allclose(v(tinyTextToImage())));

      const e1 = loadEncoder(files.encoder);
      const e2 = loadEncoder(readFileSync(files.encoder));
      assert.ok(e1.forward(x).allclose(e2.forward(x), 0, 0));
    }),
  );
});

test('a model file of another kind, or not a model file, is refused with what it is', () => {
  assert.throws(() => loadGenerator(files.tokenizer), /expected a reptok generator .* but it is a reptok tokenizer/);
  assert.throws(() => loadTokenizer(files.t2i), /expected a reptok tokenizer .* but it is a reptok t2i/);
  assert.throws(() => loadTokenizer(Buffer.from('not a file at all')), /\(buffer\): not a valid safetensors file/);
});
