// Tokenizers: CLIP's byte-level BPE (with a small hand-built vocabulary, from both file formats) and the word
// tokenizer the small text encoder uses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ClipTokenizer } from '../../../src/models/text/clip-tokenizer.ts';
import { WordTokenizer } from '../../../src/models/text/word-tokenizer.ts';

// A vocabulary in CLIP's shape: every byte symbol alone and with `</w>`, the merges below, and the special tokens.
function miniClip(): { vocab: Record<string, number>; merges: [string, string][] } {
  // '!'..'~' are their own byte symbols
  const printable = [...Array(94).keys()].map((i) => String.fromCharCode(33 + i));
  const symbols = [...printable, 'Ã', '©', 'Ġ'];
  const merges: [string, string][] = [
    ['c', 'a'],
    ['ca', 't</w>'],
    ['a', '</w>'],
    ['d', 'o'],
    ['do', 'g</w>'],
  ];
  const tokens = [
    ...symbols,
    ...symbols.map((s) => `${s}</w>`),
    ...merges.map(([a, b]) => a + b),
    '<|startoftext|>',
    '<|endoftext|>',
  ];
  return { vocab: Object.fromEntries(tokens.map((t, i) => [t, i])), merges };
}

test('CLIP BPE: cleaning, merges by rank, word ends, punctuation, apostrophes, UTF-8 bytes', () => {
  const { vocab, merges } = miniClip();
  const tok = new ClipTokenizer(vocab, merges, { maxLength: 8 });
  const ids = (pieces: string[]) => pieces.map((p) => vocab[p]!);
  assert.deepEqual(tok.encode('  A   CAT '), ids(['a</w>', 'cat</w>']));
  assert.deepEqual(tok.encode('dog!'), ids(['dog</w>', '!</w>']));
  assert.deepEqual(tok.encode("cat's"), ids(['cat</w>', "'", 's</w>']));
  assert.deepEqual(tok.encode('cats'), ids(['ca', 't', 's</w>']), 'merges apply only where ranked pairs exist');
  assert.deepEqual(tok.encode('&amp;'), ids(['&</w>']));
  assert.deepEqual(tok.encode('é'), ids(['Ã', '©</w>']), 'non-ASCII text is split into UTF-8 byte symbols');
  const b = tok.batch(['a cat', 'dog dog dog dog dog dog dog dog']);
  const [bos, eos] = [vocab['<|startoftext|>']!, vocab['<|endoftext|>']!];
  assert.deepEqual(b.ids[0], [bos, ...ids(['a</w>', 'cat</w>']), eos, eos, eos, eos, eos]);
  assert.deepEqual(b.mask[0], [true, true, true, true, false, false, false, false]);
  assert.equal(b.ids[1]!.length, 8);
  assert.equal(b.ids[1]![7], eos, 'truncation keeps EOS');
});

test('CLIP tokenizer files: vocab.json + merges.txt and tokenizer.json give the same tokens', () => {
  const { vocab, merges } = miniClip();
  const a = mkdtempSync(join(tmpdir(), 'clip-tok-'));
  writeFileSync(join(a, 'vocab.json'), JSON.stringify(vocab));
  writeFileSync(join(a, 'merges.txt'), `#version: 0.2\n${merges.map((m) => m.join(' ')).join('\n')}\n`);
  const b = mkdtempSync(join(tmpdir(), 'clip-tok-'));
  writeFileSync(
    join(b, 'tokenizer.json'),
    JSON.stringify({ model: { type: 'BPE', vocab, merges: merges.map((m) => m.join(' ')) } }),
  );
  writeFileSync(join(b, 'tokenizer_config.json'), JSON.stringify({ model_max_length: 5, pad_token: '!' }));
  const ta = ClipTokenizer.fromFolder(a);
  const tb = ClipTokenizer.fromFolder(b);
  assert.deepEqual(ta.encode('a dog, a cat'), tb.encode('a dog, a cat'));
  assert.equal(tb.maxLength, 5);
  assert.equal(tb.padId, vocab['!']);
  assert.throws(() => ClipTokenizer.fromFolder(tmpdir()), /no CLIP tokenizer files/);
});

test('word tokenizer: vocabulary by frequency, unknown words, JSON round trip', () => {
  const t = WordTokenizer.fromCaptions(['Grinning face', 'grinning cat face', 'red heart'], { maxLength: 5 });
  assert.deepEqual(t.vocab.slice(0, 6), ['[PAD]', '[BOS]', '[EOS]', '[UNK]', 'face', 'grinning']);
  assert.deepEqual(t.encode('Grinning, unicorn!'), [5, t.unkId]);
  const back = WordTokenizer.fromJSON(t.toJSON());
  assert.deepEqual(back.batch(['red heart face cat grinning']).ids, [[1, 8, 7, 4, 2]]);
});
