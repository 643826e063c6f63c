// The web demo on the shipped models, measured: starts `reptok serve` on weights/, drives Debian's chromium through
// every feature (reconstruct, interpolate and scrub, sample a class, generate from a prompt) for the screenshot in
// docs/web-demo.png, then times each feature through the HTTP API and fires 50 concurrent requests at 2 inference
// processes. Prints JSON lines: latency per feature (median of --repeat), the 50-request outcome and the peak RSS of
// the server's process tree.
//
//   npx tsx scripts/web-demo-tour.ts [--screenshot out/web-demo.png] [--repeat 5] [--steps 50]
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

import { SHIPPED_WEIGHTS, shippedDir } from '../src/pipeline/shipped.ts';
import { peakRss, serve } from '../tools/serve-process.ts';

declare const document: any; // the callbacks of waitForFunction run in the browser

const arg = (flag: string, fallback: string) => {
  const i = process.argv.indexOf(flag);
  return i > 0 ? process.argv[i + 1]! : fallback;
};
// out/ by default: docs/web-demo.png is the committed one, retaken only when asked (a short run would spoil it)
const screenshot = arg('--screenshot', join('out', 'web-demo.png'));
const repeat = Number(arg('--repeat', '5'));
const steps = arg('--steps', '50');

/** The first sample image of each of the first `n` classes of a shipped family. */
function samples(family: 'fashion-mnist' | 'emoji', n: number): { name: string; bytes: Buffer }[] {
  const dir = join(shippedDir(family), 'samples');
  return readdirSync(dir)
    .sort()
    .slice(0, n)
    .map((c) => {
      const file = readdirSync(join(dir, c)).sort()[0]!;
      return { name: `${c}-${file}`, bytes: readFileSync(join(dir, c, file)) };
    });
}

const s = await serve(['--model', SHIPPED_WEIGHTS, '--steps', steps, '--concurrency', '2', '--queue', '8']);
const [a, b] = samples('fashion-mnist', 2);
try {
  // ---- the tour, for the screenshot ------------------------------------------------------------------------------
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  const page = await browser.newPage({ viewport: { width: 1100, height: 1400 } });
  page.setDefaultTimeout(300_000);
  await page.goto(s.url);
  await page.waitForSelector('body[data-ready="true"]');
  await page.selectOption('#model', 'fashion-mnist');
  await page.setInputFiles('#reconstruct-file', { name: a!.name, mimeType: 'image/png', buffer: a!.bytes });
  await page.waitForSelector('#reconstruct-result:not([hidden])');
  await page.fill('#interpolate-frames', '8');
  await page.setInputFiles('#interpolate-a', { name: a!.name, mimeType: 'image/png', buffer: a!.bytes });
  await page.setInputFiles('#interpolate-b', { name: b!.name, mimeType: 'image/png', buffer: b!.bytes });
  await page.waitForSelector('#interpolate-result:not([hidden])');
  await page.locator('#interpolate-slider').fill('3');
  await page.selectOption('#sample-class', { index: 7 });
  await page.fill('#sample-n', '6');
  await page.click('#sample-go');
  await page.waitForFunction(() => document.querySelectorAll('#sample-images img').length === 6);
  await page.screenshot({ path: screenshot, fullPage: true });
  await browser.close();
  console.log(JSON.stringify({ screenshot }));

  // ---- latency per feature ---------------------------------------------------------------------------------------
  const post = async (path: string, body: Buffer | object) => {
    const t0 = performance.now();
    const r = await fetch(new URL(path, s.url), {
      method: 'POST',
      body: Buffer.isBuffer(body) ? body : JSON.stringify(body),
      headers: { 'Content-Type': Buffer.isBuffer(body) ? 'image/png' : 'application/json' },
    });
    const json = (await r.json()) as any;
    if (r.status !== 200) throw new Error(`${path}: ${r.status} ${json.error}`);
    return { ms: performance.now() - t0, json };
  };
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  const ids = await Promise.all(
    [a!, b!].map(async (x) => (await post('/api/encode?model=fashion-mnist', x.bytes)).json.id),
  );
  const features: Record<string, (i: number) => Promise<{ ms: number }>> = {
    'reconstruct (fashion-mnist, with neighbours)': (i) =>
      post(`/api/reconstruct?model=fashion-mnist&seed=${i}`, a!.bytes),
    'interpolate 8 frames (fashion-mnist)': (i) =>
      post('/api/interpolate', { model: 'fashion-mnist', a: ids[0], b: ids[1], frames: 8, seed: 100 + i }),
    'sample 4 of a class (fashion-mnist)': (i) =>
      post('/api/sample', { model: 'fashion-mnist', class: 'Sneaker', n: 4, seed: i }),
    'generate 4 from a prompt (emoji)': (i) =>
      post('/api/generate', { model: 'emoji', prompt: 'red apple', n: 4, seed: i }),
  };
  for (const [feature, call] of Object.entries(features)) {
    const ms: number[] = [];
    for (let i = 0; i < repeat; i++) ms.push((await call(i)).ms);
    console.log(JSON.stringify({ feature, steps: Number(steps), repeat, median_ms: Math.round(median(ms)) }));
  }

  // ---- 50 concurrent requests against 2 inference processes ------------------------------------------------------
  const t0 = performance.now();
  const answers = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      fetch(new URL('/api/sample', s.url), {
        method: 'POST',
        body: JSON.stringify({ model: 'fashion-mnist', class: 'Bag', n: 1, seed: i }),
        headers: { 'Content-Type': 'application/json' },
      }).then(async (r) => (await r.arrayBuffer(), r.status)),
    ),
  );
  const statuses: Record<number, number> = {};
  for (const st of answers) statuses[st] = (statuses[st] ?? 0) + 1;
  const healthy = (await fetch(new URL('/healthz', s.url))).status === 200;
  const rss = [...peakRss(s.proc.pid!).values()];
  console.log(
    JSON.stringify({
      concurrent: 50,
      concurrency: 2,
      queue: 8,
      statuses,
      seconds: Math.round(performance.now() - t0) / 1000,
      healthy_after: healthy,
      peak_rss_mb: { total: Math.round(rss.reduce((x, y) => x + y, 0) / 2 ** 20), processes: rss.length },
    }),
  );
} finally {
  await s.stop();
}
