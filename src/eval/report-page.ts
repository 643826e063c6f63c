// Writes an evaluation report: report.json (the numbers with their protocol) and index.html (the same numbers
// beside the image grids), in one folder.
import { join } from 'node:path';

import { atomicWriteText } from '../io/atomic.ts';
import { imageGrid, writeImage } from '../io/image.ts';
import { makeOutputDir } from '../io/out-dir.ts';
import type { EvalPictures, EvalReport } from './evaluate.ts';

const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const fmt = (v: unknown): string =>
  typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : escapeHtml(JSON.stringify(v));

/** Rows of a two-column table from an object (nested objects flattened as a.b). */
function rows(o: object, prefix = ''): string[] {
  return Object.entries(o).flatMap(([k, v]) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? rows(v, `${prefix}${k}.`)
      : [`<tr><th>${escapeHtml(prefix + k)}</th><td>${fmt(v)}</td></tr>`],
  );
}

const table = (title: string, o: object | undefined): string =>
  o ? `<h2>${escapeHtml(title)}</h2>\n<table>\n${rows(o).join('\n')}\n</table>` : '';

/** Writes report.json, the grids as PNG and index.html into `dir`; returns the paths. */
export async function writeEvalReport(
  dir: string,
  report: EvalReport,
  pictures: EvalPictures,
  o: { perRow: Record<keyof EvalPictures, number> },
): Promise<{ json: string; html: string }> {
  makeOutputDir(dir, 'report folder');
  const json = join(dir, 'report.json');
  atomicWriteText(json, JSON.stringify(report, null, 2) + '\n');
  const figures: string[] = [];
  const captions = {
    reconstructions: 'held-out images (top) and their one-token reconstructions (bottom)',
    samples: 'class-conditional samples, one row per class',
    interpolations: 'slerp paths between held-out images, one row per path (first and last frame: reconstructions)',
    prompts:
      'text-to-image samples, one row per held-out prompt: ' + (report.textToImage?.heldOutPrompts ?? []).join(' · '),
  } as const;
  for (const key of ['reconstructions', 'samples', 'interpolations', 'prompts'] as const) {
    const images = pictures[key];
    if (!images) continue;
    const grid = imageGrid(images, { nrow: o.perRow[key] });
    try {
      await writeImage(join(dir, `${key}.png`), grid);
    } finally {
      grid.dispose();
    }
    figures.push(
      `<figure><img src="${key}.png" alt="${key}"><figcaption>${escapeHtml(captions[key])}</figcaption></figure>`,
    );
  }
  const html = join(dir, 'index.html');
  atomicWriteText(
    html,
    `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>reptok eval</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 2em; max-width: 70em; }
table { border-collapse: collapse; margin-bottom: 1em; }
th, td { text-align: left; padding: 2px 12px 2px 0; border-bottom: 1px solid #ddd; }
th { font-weight: normal; color: #555; }
img { image-rendering: pixelated; width: 100%; max-width: 60em; }
</style></head><body>
<h1>reptok eval</h1>
<p>Every number below is measured under the protocol stated first; report.json holds the same numbers.</p>
${table('Protocol', report.protocol)}
${table('Models', report.models)}
${table('Reconstruction', report.reconstruction)}
${table('Generation', report.generation)}
${table('Interpolation', report.interpolation)}
${table('Text to image', report.textToImage)}
${table('Seconds', report.seconds)}
${figures.join('\n')}
</body></html>
`,
  );
  return { json, html };
}
