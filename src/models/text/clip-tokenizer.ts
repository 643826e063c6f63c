// CLIP's byte-level BPE tokenizer (Radford et al., 2021), read from a Hub checkpoint's `vocab.json` + `merges.txt`
// or `tokenizer.json`. Text is cleaned (HTML entities, whitespace), lower-cased, split by CLIP's pattern, mapped to
// byte-level symbols and merged by rank; each word ends in `</w>`. Prompts become [BOS, ..., EOS, PAD...].
// Reference: openai/CLIP simple_tokenizer.py and transformers' CLIPTokenizer (without ftfy).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** GPT-2's reversible map from bytes to printable unicode characters. */
function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const table: string[] = new Array(256);
  bs.forEach((b, i) => (table[b] = String.fromCodePoint(cs[i]!)));
  return table;
}

const BYTE_CHARS = bytesToUnicode();
const PATTERN = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/giu;

function clean(text: string): string {
  const unescaped = text.replace(
    /&(amp|lt|gt|quot|#39|#x27);/g,
    (m) => ({ '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#39;': "'", '&#x27;': "'" })[m]!,
  );
  return unescaped.replace(/\s+/g, ' ').trim().toLowerCase();
}

export interface Tokenized {
  ids: number[][];
  mask: boolean[][];
}

export class ClipTokenizer {
  readonly #vocab: Map<string, number>;
  readonly #ranks: Map<string, number>;
  readonly #cache = new Map<string, string[]>();
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;

  constructor(
    vocab: Record<string, number>,
    merges: [string, string][],
    o: { bos?: string; eos?: string; pad?: string; maxLength?: number } = {},
  ) {
    this.#vocab = new Map(Object.entries(vocab));
    this.#ranks = new Map(merges.map(([a, b], i) => [`${a} ${b}`, i]));
    const id = (t: string): number => {
      const v = this.#vocab.get(t);
      if (v === undefined) throw new Error(`CLIP tokenizer: special token ${t} is not in the vocabulary`);
      return v;
    };
    this.bosId = id(o.bos ?? '<|startoftext|>');
    this.eosId = id(o.eos ?? '<|endoftext|>');
    this.padId = id(o.pad ?? o.eos ?? '<|endoftext|>');
    this.maxLength = o.maxLength ?? 77;
  }

  readonly maxLength: number;

  /** From a folder with `tokenizer.json`, or `vocab.json` + `merges.txt` (and optionally `tokenizer_config.json`). */
  static fromFolder(dir: string): ClipTokenizer {
    const cfgPath = join(dir, 'tokenizer_config.json');
    const cfg = existsSync(cfgPath) ? JSON.parse(readFileSync(cfgPath, 'utf8')) : {};
    const name = (v: unknown): string | undefined =>
      typeof v === 'string' ? v : (v as { content?: string } | undefined)?.content;
    const special = {
      bos: name(cfg.bos_token),
      eos: name(cfg.eos_token),
      pad: name(cfg.pad_token),
      maxLength: cfg.model_max_length > 1e6 ? undefined : cfg.model_max_length,
    };
    if (existsSync(join(dir, 'vocab.json')) && existsSync(join(dir, 'merges.txt'))) {
      const vocab = JSON.parse(readFileSync(join(dir, 'vocab.json'), 'utf8'));
      const merges = readFileSync(join(dir, 'merges.txt'), 'utf8')
        .split('\n')
        .filter((l) => l && !l.startsWith('#version'))
        .map((l) => l.split(' ') as [string, string]);
      return new ClipTokenizer(vocab, merges, special);
    }
    if (existsSync(join(dir, 'tokenizer.json'))) {
      const tj = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
      const merges = (tj.model.merges as (string | [string, string])[]).map((m) =>
        typeof m === 'string' ? (m.split(' ') as [string, string]) : m,
      );
      return new ClipTokenizer(tj.model.vocab, merges, special);
    }
    throw new Error(`${dir}: no CLIP tokenizer files (expected tokenizer.json, or vocab.json and merges.txt)`);
  }

  #bpe(token: string): string[] {
    const cached = this.#cache.get(token);
    if (cached) return cached;
    const chars = [...token];
    let word = [...chars.slice(0, -1), `${chars.at(-1)}</w>`];
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < word.length; i++) {
        const r = this.#ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < bestRank) ((bestRank = r), (best = i));
      }
      if (best < 0) break;
      const [a, b] = [word[best]!, word[best + 1]!];
      const merged: string[] = [];
      for (let i = 0; i < word.length; i++) {
        if (i + 1 < word.length && word[i] === a && word[i + 1] === b) {
          merged.push(a + b);
          i++;
        } else merged.push(word[i]!);
      }
      word = merged;
    }
    this.#cache.set(token, word);
    return word;
  }

  /** Token ids of a text, without BOS/EOS. Unknown symbols (impossible with a complete byte vocabulary) throw. */
  encode(text: string): number[] {
    const ids: number[] = [];
    for (const m of clean(text).matchAll(PATTERN)) {
      const sym = [...Buffer.from(m[0], 'utf8')].map((b) => BYTE_CHARS[b]).join('');
      for (const piece of this.#bpe(sym)) {
        const id = this.#vocab.get(piece);
        if (id === undefined) throw new Error(`CLIP tokenizer: '${piece}' is not in the vocabulary`);
        ids.push(id);
      }
    }
    return ids;
  }

  /** Batches prompts as [BOS, tokens..., EOS] truncated to `maxLength` (EOS kept) and padded, with masks. */
  batch(prompts: string[], maxLength = this.maxLength): Tokenized {
    const ids: number[][] = [];
    const mask: boolean[][] = [];
    for (const p of prompts) {
      const body = this.encode(p).slice(0, maxLength - 2);
      const seq = [this.bosId, ...body, this.eosId];
      mask.push(seq.map(() => true).concat(Array(maxLength - seq.length).fill(false)));
      ids.push(seq.concat(Array(maxLength - seq.length).fill(this.padId)));
    }
    return { ids, mask };
  }
}
