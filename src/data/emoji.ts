// Emoji with captions: the Twemoji SVGs of the npm package @discordapp/twemoji (graphics CC-BY 4.0 by Twitter,
// Inc. and contributors — credit them wherever images or models derived from them appear), rasterised on white,
// named and grouped by Unicode's emoji-test.txt (Debian's unicode-data). Caption = the emoji's name ("grinning
// face with big eyes"); class = its group (or subgroup). The rasterised set is cached as safetensors.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

import { fromBytes } from '../engine/index.ts';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.ts';
import { readImageBytes } from '../io/image.ts';
import { imageArray, type ImageArray } from './image-array.ts';

export const EMOJI_TEST = '/usr/share/unicode/emoji/emoji-test.txt';
export const TWEMOJI_CREDIT =
  'Emoji graphics: Twemoji by Twitter, Inc. and other contributors, ' +
  'CC-BY 4.0 (https://creativecommons.org/licenses/by/4.0/), via @discordapp/twemoji.';

export interface EmojiEntry {
  codepoints: number[];
  name: string;
  group: string;
  subgroup: string;
  /** Twemoji's file name (hex code points joined by '-', FE0F dropped unless the sequence has a ZWJ). */
  file: string;
}

/** Parses emoji-test.txt: fully-qualified emoji and components, with their groups. */
export function parseEmojiTest(text: string): EmojiEntry[] {
  const out: EmojiEntry[] = [];
  let group = '';
  let subgroup = '';
  for (const line of text.split('\n')) {
    const g = /^# group: (.+)$/.exec(line);
    if (g) group = g[1]!.trim();
    const s = /^# subgroup: (.+)$/.exec(line);
    if (s) subgroup = s[1]!.trim();
    const m = /^([0-9A-F ]+?)\s*;\s*(fully-qualified|component)\s*#\s*\S+\s+E\d+\.\d+\s+(.+)$/.exec(line);
    if (!m) continue;
    const codepoints = m[1]!
      .trim()
      .split(/\s+/)
      .map((h) => parseInt(h, 16));
    const zwj = codepoints.includes(0x200d);
    const file = codepoints
      .filter((c) => zwj || c !== 0xfe0f)
      .map((c) => c.toString(16))
      .join('-');
    out.push({ codepoints, name: m[3]!.trim(), group, subgroup, file });
  }
  return out;
}

function twemojiDir(): string {
  const pkg = createRequire(import.meta.url).resolve('@discordapp/twemoji/package.json');
  return join(dirname(pkg), 'dist', 'svg');
}

export interface EmojiOptions {
  size: 32 | 64;
  /** Classes from Unicode groups (10) or subgroups (~100). */
  classBy?: 'group' | 'subgroup';
  cacheDir?: string;
  emojiTest?: string;
  onProgress?: (done: number, total: number) => void;
}

/** All emoji of emoji-test.txt that Twemoji draws, as RGB images on white with captions and classes. */
export async function loadEmoji(o: EmojiOptions): Promise<ImageArray> {
  const testFile = o.emojiTest ?? EMOJI_TEST;
  if (!existsSync(testFile))
    throw new Error(
      `${testFile} not found: install Debian's unicode-data (apt-get install unicode-data) or pass emojiTest`,
    );
  const svgDir = twemojiDir();
  const entries = parseEmojiTest(readFileSync(testFile, 'utf8')).filter((e) =>
    existsSync(join(svgDir, `${e.file}.svg`)),
  );
  if (entries.length === 0) throw new Error(`no Twemoji SVGs in ${svgDir} match ${testFile}`);
  const classBy = o.classBy ?? 'group';
  const classes = [...new Set(entries.map((e) => e[classBy]))];
  const labels = entries.map((e) => classes.indexOf(e[classBy]));
  const captions = entries.map((e) => e.name);
  const { version } = JSON.parse(readFileSync(join(svgDir, '..', '..', 'package.json'), 'utf8'));
  const cacheDir = o.cacheDir ?? join(homedir(), '.cache', 'reptok');
  const cache = join(cacheDir, `twemoji-${version}-${o.size}-${entries.length}.safetensors`);
  if (existsSync(cache)) {
    const { tensors } = loadSafetensors(cache);
    const px = tensors.get('pixels')!;
    return imageArray(new Uint8Array(px.bytes()), [entries.length, 3, o.size, o.size], labels, classes, captions);
  }
  const size = 3 * o.size * o.size;
  const pixels = new Uint8Array(entries.length * size);
  let done = 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < entries.length) {
        const i = next++;
        // Twemoji's viewBox is 36×36: a density of 72·size/36 dpi renders it at size×size
        const img = await readImageBytes(join(svgDir, `${entries[i]!.file}.svg`), {
          density: (72 * o.size) / 36,
          resize: [o.size, o.size],
          channels: 3,
        });
        pixels.set(img.data, i * size);
        o.onProgress?.(++done, entries.length);
      }
    }),
  );
  mkdirSync(cacheDir, { recursive: true });
  saveSafetensors(
    cache,
    { pixels: fromBytes(pixels, 'uint8', [entries.length, 3, o.size, o.size]) },
    { source: `@discordapp/twemoji ${version}`, credit: TWEMOJI_CREDIT },
  );
  return imageArray(pixels, [entries.length, 3, o.size, o.size], labels, classes, captions);
}
