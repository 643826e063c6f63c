// A word-level tokenizer learned from a data set's captions: lower-cased words (letters and digits), one id per
// word seen at least `minCount` times, plus [PAD], [BOS], [EOS] and [UNK]. Small, transparent, and enough for
// captioned data sets with a limited vocabulary (e.g. emoji names); it is saved with the model as JSON.
import type { Tokenized } from './clip-tokenizer.ts';

const SPECIAL = ['[PAD]', '[BOS]', '[EOS]', '[UNK]'] as const;

export const words = (text: string): string[] => text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];

export class WordTokenizer {
  readonly vocab: string[];
  readonly #ids: Map<string, number>;
  readonly padId = 0;
  readonly bosId = 1;
  readonly eosId = 2;
  readonly unkId = 3;

  constructor(
    vocab: string[],
    readonly maxLength = 16,
  ) {
    if (SPECIAL.some((s, i) => vocab[i] !== s))
      throw new Error(`WordTokenizer: the vocabulary must start with ${SPECIAL.join(', ')}`);
    this.vocab = [...vocab];
    this.#ids = new Map(vocab.map((w, i) => [w, i]));
  }

  /** Builds the vocabulary from captions (most frequent first, ties alphabetical). */
  static fromCaptions(
    captions: Iterable<string>,
    o: { minCount?: number; maxVocab?: number; maxLength?: number } = {},
  ): WordTokenizer {
    const counts = new Map<string, number>();
    for (const c of captions) for (const w of words(c)) counts.set(w, (counts.get(w) ?? 0) + 1);
    const kept = [...counts]
      .filter(([, n]) => n >= (o.minCount ?? 1))
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .map(([w]) => w);
    return new WordTokenizer([...SPECIAL, ...kept.slice(0, (o.maxVocab ?? 50_000) - SPECIAL.length)], o.maxLength);
  }

  static fromJSON(json: string): WordTokenizer {
    const o = JSON.parse(json) as { vocab: string[]; maxLength: number };
    return new WordTokenizer(o.vocab, o.maxLength);
  }

  toJSON(): string {
    return JSON.stringify({ vocab: this.vocab, maxLength: this.maxLength });
  }

  encode(text: string): number[] {
    return words(text).map((w) => this.#ids.get(w) ?? this.unkId);
  }

  /** [BOS, words..., EOS] truncated to maxLength (EOS kept) and padded with [PAD], with masks. */
  batch(prompts: string[], maxLength = this.maxLength): Tokenized {
    const ids: number[][] = [];
    const mask: boolean[][] = [];
    for (const p of prompts) {
      const seq = [this.bosId, ...this.encode(p).slice(0, maxLength - 2), this.eosId];
      mask.push(seq.map(() => true).concat(Array(maxLength - seq.length).fill(false)));
      ids.push(seq.concat(Array(maxLength - seq.length).fill(this.padId)));
    }
    return { ids, mask };
  }
}
