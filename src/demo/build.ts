// The demo page's content: runs shipped models (no training) on their sample images and writes the pictures —
// one-token reconstructions beside their originals (with PSNR), interpolation strips and an animation,
// class-conditional samples at several guidance scales, text-to-image samples for a few prompts — timing each
// part. html.ts turns the result into index.html.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { cat, stack, tidy, type Tensor } from '../engine/index.ts';
import { imagesTensor } from '../data/image-array.ts';
import { psnr } from '../eval/metrics.ts';
import { imageGrid, writeAnimation, writeImage } from '../io/image.ts';
import type { ModelSet } from '../pipeline/model-set.ts';
import { onHost } from '../pipeline/host.ts';
import { RepTok } from '../pipeline/reptok.ts';
import { loadSampleImages } from '../pipeline/sample-images.ts';

export interface DemoOptions {
  /** The page's folder; each model set's pictures go to a sub-folder of it named after the set. */
  out: string;
  /** ODE steps of every decode and generation. */
  steps: number;
  /** Sample images reconstructed (the first ones of the model folder's samples/ or the data set's test split). */
  images: number;
  /** Frames of an interpolation. */
  frames: number;
  guidanceScales: number[];
  /** Samples per class (per prompt) at each guidance scale. */
  perClass: number;
  /** Prompts for a text-to-image model (default: the folder's prompts.txt, else the sample images' captions). */
  prompts?: string[];
  log?: (message: string) => void;
}

/** One picture on the page: its file (relative to the page) and what it shows. */
export interface Picture {
  file: string;
  caption: string;
}

/** A part of a model set's section: pictures, or a note saying why there are none; and how long it took. */
export interface Part {
  title: string;
  seconds: number;
  pictures: Picture[];
  note?: string;
}

export interface SetReport {
  name: string;
  description: string;
  /** How much the page enlarges the pictures (small models make small images). */
  zoom: number;
  parts: Part[];
}

export async function buildDemo(sets: ModelSet[], o: DemoOptions): Promise<SetReport[]> {
  const reports: SetReport[] = [];
  for (const set of sets) {
    o.log?.(`== ${set.name}`);
    const rt = RepTok.load(set.sources);
    try {
      reports.push(await buildSet(set, rt, o));
    } finally {
      rt.dispose();
    }
  }
  return reports;
}

/** One model set's section of the page, from its loaded pipeline. */
export async function buildSet(set: ModelSet, rt: RepTok, o: DemoOptions): Promise<SetReport> {
  const dir = join(o.out, set.name);
  mkdirSync(dir, { recursive: true });
  const parts: Part[] = [];
  const part = async (title: string, make: () => Promise<Omit<Part, 'title' | 'seconds'>>) => {
    o.log?.(`   ${title} ...`);
    const t0 = performance.now();
    const p = await make();
    parts.push({ title, seconds: (performance.now() - t0) / 1000, ...p });
  };
  /** Writes a picture (C, H, W) into the set's folder and disposes it; returns it as the page refers to it. */
  const picture = async (name: string, img: Tensor, caption: string): Promise<Picture> => {
    try {
      await writeImage(join(dir, name), img);
    } finally {
      img.dispose();
    }
    return { file: `${set.name}/${name}`, caption };
  };
  const grid = (images: Tensor, nrow: number) => imageGrid(images, { nrow, padding: 2 });
  const d = { steps: o.steps, seed: 0 };

  const samples = await loadSampleImages(rt, { dir: set.dir, n: o.images });
  const originals = samples.images
    ? imagesTensor(
        samples.images,
        Int32Array.from({ length: samples.images.n }, (_, i) => i),
      )
    : null;
  try {
    // ---- reconstructions --------------------------------------------------------------------------------------------
    await part('One-token reconstructions', async () => {
      if (!originals) return { pictures: [], note: `No sample images: ${samples.images ? '' : samples.why}.` };
      const recon = onHost(rt.reconstruct(originals, d));
      const B = originals.shape[0]!;
      const perImage = Array.from({ length: B }, (_, i) =>
        tidy(() => psnr(recon.slice(0, i, i + 1), originals.slice(0, i, i + 1))),
      );
      const pictures: Picture[] = [];
      for (let i = 0; i < B; i++) {
        const pair = tidy(() => grid(stack([originals.select(0, i), recon.select(0, i)]), 2));
        pictures.push(await picture(`reconstruction-${i}.png`, pair, `${perImage[i]!.toFixed(1)} dB`));
      }
      const mean = psnr(recon, originals);
      recon.dispose();
      return {
        pictures,
        note:
          `Left: the image (${samples.images ? samples.from : ''}); right: decoded from its one token. ` +
          `Mean PSNR ${mean.toFixed(2)} dB over ${B} images.`,
      };
    });

    // ---- interpolations ---------------------------------------------------------------------------------------------
    await part('Interpolations', async () => {
      if (!originals || originals.shape[0]! < 2) return { pictures: [], note: 'Needs two sample images.' };
      const pairs = Math.min(3, Math.floor(originals.shape[0]! / 2));
      const pictures: Picture[] = [];
      for (let k = 0; k < pairs; k++) {
        const [a, b] = [originals.select(0, 2 * k), originals.select(0, 2 * k + 1)];
        const { images: frames, tokens } = rt.interpolate(a, b, { ...d, frames: o.frames });
        const images = onHost(frames);
        const strip = grid(images, o.frames);
        pictures.push(await picture(`interpolation-${k}.png`, strip, `image ${2 * k + 1} → image ${2 * k + 2}`));
        if (k === 0) {
          // there and back again, as an animation
          const loop = tidy(() => cat([images, images.flip([0]).slice(0, 1, o.frames - 1)]));
          await writeAnimation(join(dir, 'interpolation.webp'), loop, { delayMs: 120 });
          pictures.push({ file: `${set.name}/interpolation.webp`, caption: 'the same path, animated' });
          loop.dispose();
        }
        for (const t of [a, b, images, tokens]) t.dispose();
      }
      return {
        pictures,
        note: `${o.frames} frames on the norm-aware spherical path between two tokens, all decoded from one noise.`,
      };
    });
  } finally {
    originals?.dispose();
  }

  // ---- class-conditional samples -----------------------------------------------------------------------------------
  const classes = rt.generator && rt.generator.config.numClasses > 0 ? rt.classes : [];
  if (classes.length)
    await part('Class-conditional samples', async () => {
      const pictures: Picture[] = [];
      for (const [k, guidance] of o.guidanceScales.entries()) {
        const { images: sampled, tokens } = rt.sample({ ...d, n: o.perClass, guidance });
        const images = onHost(sampled);
        // sample() returns the samples class by class; the picture has a column per class, a row per sample
        const byColumn = tidy(() =>
          images
            .reshape(classes.length, o.perClass, ...images.shape.slice(1))
            .transpose(0, 1)
            .reshape(...images.shape),
        );
        pictures.push(await picture(`samples-${k}.png`, grid(byColumn, classes.length), `guidance ${guidance}`));
        for (const t of [images, tokens, byColumn]) t.dispose();
      }
      return { pictures, note: `Columns: ${classes.join(', ')}. Guidance 1 is no guidance.` };
    });

  // ---- text to image -----------------------------------------------------------------------------------------------
  if (rt.t2i)
    await part('Text to image', async () => {
      const prompts = o.prompts?.length ? o.prompts : defaultPrompts(set, samples.images?.captions);
      if (!prompts.length)
        return { pictures: [], note: 'No prompts: pass --prompt TEXT or put a prompts.txt in the model folder.' };
      const guidance = o.guidanceScales.find((g) => g > 1) ?? o.guidanceScales[0]!;
      const pictures: Picture[] = [];
      for (const [k, prompt] of prompts.entries()) {
        const { images: generated, tokens } = rt.generate([prompt], { ...d, n: o.perClass, guidance });
        const images = onHost(generated);
        pictures.push(await picture(`prompt-${k}.png`, grid(images, o.perClass), `“${prompt}”`));
        images.dispose();
        tokens.dispose();
      }
      return { pictures, note: `${o.perClass} samples per prompt at guidance ${guidance}.` };
    });

  const [H, W] = rt.imageSize;
  const what = [classes.length ? `${classes.length} classes` : '', rt.t2i ? 'text to image' : ''].filter(Boolean);
  return {
    name: set.name,
    zoom: Math.max(1, Math.round(96 / H)),
    description:
      `${W}×${H} ${rt.channels === 1 ? 'gray' : 'colour'} images as tokens of ${rt.tokenDim} numbers` +
      `${what.length ? `; ${what.join(', ')}` : ''}; ${o.steps} ODE steps per decode.`,
    parts,
  };
}

/** The model folder's prompts.txt (one prompt a line), else the captions of the first sample images. */
function defaultPrompts(set: ModelSet, captions: (string | undefined)[] | undefined): string[] {
  const file = set.dir && join(set.dir, 'prompts.txt');
  if (file && existsSync(file))
    return readFileSync(file, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .slice(0, 8);
  return [...new Set((captions ?? []).filter((c): c is string => !!c))].slice(0, 4);
}
