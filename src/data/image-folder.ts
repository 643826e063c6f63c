// Image folders: every image below a root (png, jpg, webp, gif, svg, tiff), decoded with sharp to a fixed size.
// The class of an image is its first sub-folder; captions come from a sidecar `<image>.txt` or a `captions.jsonl`
// at the root ({"file": "<relative path>", "caption": "..."} per line). Unreadable files are skipped and reported.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';

import { readImageBytes } from '../io/image.ts';
import { sharedBytes, type ImageArray } from './image-array.ts';

export const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp', '.gif', '.svg', '.tif', '.tiff', '.avif']);

export interface FolderOptions {
  /** Images are resized (shorter side) and center-cropped to size×size. */
  size: number;
  channels?: 1 | 3;
  /** Decodes in flight at once. */
  concurrency?: number;
  /** Called as decoding progresses. */
  onProgress?: (done: number, total: number) => void;
}

export interface FolderResult {
  data: ImageArray;
  skipped: { path: string; reason: string }[];
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .flatMap((e) =>
      e.isDirectory()
        ? walk(join(dir, e.name))
        : IMAGE_EXTENSIONS.has(extname(e.name).toLowerCase())
          ? [join(dir, e.name)]
          : [],
    );
}

function readCaptions(root: string): Map<string, string> {
  const file = join(root, 'captions.jsonl');
  const out = new Map<string, string>();
  if (!existsSync(file)) return out;
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (!line.trim()) return;
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line);
      } catch {
        throw new Error(`${file}:${i + 1}: not valid JSON`);
      }
      const name = rec.file ?? rec.image ?? rec.path;
      if (typeof name !== 'string' || typeof rec.caption !== 'string')
        throw new Error(`${file}:${i + 1}: expected {"file": ..., "caption": ...}`);
      out.set(name.split('/').join(sep), rec.caption);
    });
  return out;
}

export async function loadImageFolder(root: string, o: FolderOptions): Promise<FolderResult> {
  if (!existsSync(root) || !statSync(root).isDirectory())
    throw new Error(`image folder ${root} does not exist or is not a folder`);
  const files = walk(root);
  if (files.length === 0)
    throw new Error(`${root} holds no images (looked for ${[...IMAGE_EXTENSIONS].join(', ')} files, recursively)`);
  const jsonl = readCaptions(root);
  const rels = files.map((f) => relative(root, f));
  const classes = [...new Set(rels.filter((r) => r.includes(sep)).map((r) => r.split(sep)[0]!))].sort();
  const c = o.channels ?? 3;
  const size = c * o.size * o.size;
  const decoded: (Uint8Array | null)[] = new Array(files.length).fill(null);
  const skipped: { path: string; reason: string }[] = [];
  let next = 0;
  let done = 0;
  const work = async (): Promise<void> => {
    while (next < files.length) {
      const i = next++;
      try {
        decoded[i] = (await readImageBytes(files[i]!, { size: o.size, channels: c })).data;
      } catch (e) {
        skipped.push({ path: files[i]!, reason: (e as Error).message.replace(/^cannot read image [^:]*: /, '') });
      }
      o.onProgress?.(++done, files.length);
    }
  };
  await Promise.all(Array.from({ length: o.concurrency ?? 8 }, work));
  const ok = decoded.map((d, i) => (d ? i : -1)).filter((i) => i >= 0);
  if (ok.length === 0)
    throw new Error(
      `${root}: none of the ${files.length} images could be read (first problem: ${skipped[0]?.path}: ` +
        `${skipped[0]?.reason})`,
    );
  const pixels = sharedBytes(ok.length * size);
  ok.forEach((i, k) => pixels.set(decoded[i]!, k * size));
  const caption = (i: number): string | undefined => {
    const side = files[i]!.replace(/\.[^.]+$/, '.txt');
    return jsonl.get(rels[i]!) ?? (existsSync(side) ? readFileSync(side, 'utf8').trim() : undefined);
  };
  const captions = ok.map(caption);
  return {
    data: {
      pixels,
      n: ok.length,
      c,
      h: o.size,
      w: o.size,
      labels: Int32Array.from(ok, (i) => (rels[i]!.includes(sep) ? classes.indexOf(rels[i]!.split(sep)[0]!) : -1)),
      classes,
      captions: captions.some((x) => x !== undefined) ? captions.map((x) => x ?? '') : undefined,
      sources: ok.map((i) => files[i]!),
    },
    skipped: skipped.sort((a, b) => (a.path < b.path ? -1 : 1)),
  };
}
