// The web demo end to end in a real browser: Debian's chromium, driven by playwright-core, opens the page served
// on 127.0.0.1 with tiny models and uses every feature — drop and pick an image to reconstruct (with neighbours),
// interpolate and scrub the slider, sample a class, generate from a prompt, switch to a model set that can do
// less — and checks that each result is a decodable image of the model's size. Screenshots of the page go to
// out/test-screenshots/.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

import { ROOT } from '../helpers.ts';
import { serve, type Served } from '../../tools/serve-process.ts';
import { testImage, tinyModelFolder } from './serve-helpers.ts';

// the callbacks passed to page.evaluate and waitForFunction run in the browser, which has these
declare const document: any;
declare const DataTransfer: any;

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = join(ROOT, 'out', 'test-screenshots');

let s: Served;
let browser: BrowserContext;
let page: Page;
const profile = mkdtempSync(join(tmpdir(), 'reptok-chromium-'));
const problems: string[] = [];

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium (scripts/bootstrap.mjs does)`);
  // two model sets: 'full' (every model and sample images) and 'plain' (a tokenizer alone)
  const dir = await tinyModelFolder();
  const weights = mkdtempSync(join(tmpdir(), 'reptok-weights-'));
  cpSync(dir, join(weights, 'full'), { recursive: true });
  mkdirSync(join(weights, 'plain'));
  cpSync(join(dir, 'tokenizer.safetensors'), join(weights, 'plain', 'tokenizer.safetensors'));
  s = await serve(['--model', weights, '--steps', '2', '--threads', '1']);
  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1000, height: 1400 },
  });
  page = browser.pages()[0] ?? (await browser.newPage());
  page.setDefaultTimeout(60_000);
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // a refused upload is logged by the browser as a failed resource; anything else is a fault of the page
    if (m.type() === 'error' && !/status of (4\d\d|503)/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  await page.goto(s.url);
  await page.waitForSelector('body[data-ready="true"]');
});

after(async () => {
  await browser?.close();
  rmSync(profile, { recursive: true, force: true });
  assert.equal(await s?.stop(), 0, s?.log());
  assert.deepEqual(problems, []);
});

/** The PNG behind an <img> (a data URL), checked to decode at the model's size. */
async function decodes(selector: string, what: string): Promise<void> {
  const src = await page.locator(selector).getAttribute('src');
  assert.match(src ?? '', /^data:image\/png;base64,/, `${what}: ${src?.slice(0, 40)}`);
  const meta = await sharp(Buffer.from(src!.split(',')[1]!, 'base64')).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ['png', 16, 16], what);
  const natural = await page.locator(selector).evaluate((img: any) => [img.complete, img.naturalWidth]);
  assert.deepEqual(natural, [true, 16], `${what}: the browser decodes it`);
}

const shot = (name: string) => page.screenshot({ path: join(SHOTS, `serve-${name}.png`), fullPage: true });
const timed = async (id: string) => assert.match(await page.locator(id).innerText(), /^took \d+ ms \(/);

test('the page shows what the models can do', async () => {
  assert.equal(await page.locator('#model').inputValue(), 'full');
  assert.ok(await page.locator('#model-picker').isVisible());
  for (const id of ['#reconstruct', '#interpolate', '#sample', '#generate'])
    assert.ok(await page.locator(id).isVisible(), id);
  assert.deepEqual(await page.locator('#sample-class option').allInnerTexts(), ['circle', 'square', 'triangle']);
  await shot('start');
});

test('reconstruct: pick an image, then drop one; neighbours and timing shown', async () => {
  await page.setInputFiles('#reconstruct-file', { name: 'a.png', mimeType: 'image/png', buffer: await testImage(0) });
  await page.waitForSelector('#reconstruct-result:not([hidden])');
  await decodes('#reconstruct-original', 'the original as the model sees it');
  await decodes('#reconstruct-output', 'the reconstruction');
  assert.match(await page.locator('#reconstruct-psnr').innerText(), /PSNR -?\d+\.\d dB/);
  assert.equal(await page.locator('#neighbours img').count(), 6);
  await decodes('#neighbours figure:first-child img', 'a neighbour');
  await timed('#reconstruct-time');
  // drag and drop a JPEG onto the drop zone
  // (tiny random models ignore the token: adaLN-zero starts at zero, so compare the originals, not the outputs)
  const before = await page.locator('#reconstruct-original').getAttribute('src');
  const jpeg = (await testImage(2, 30, 30, 'jpeg')).toString('base64');
  const transfer = await page.evaluateHandle((b64) => {
    const t = new DataTransfer();
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    t.items.add(new File([bytes], 'dropped.jpg', { type: 'image/jpeg' }));
    return t;
  }, jpeg);
  await page.dispatchEvent('#drop', 'drop', { dataTransfer: transfer });
  await page.waitForFunction(
    (old) => document.querySelector('#reconstruct-original')?.getAttribute('src') !== old,
    before,
  );
  await decodes('#reconstruct-original', 'the dropped image as the model sees it');
  await decodes('#reconstruct-output', 'the reconstruction of the dropped image');
  await shot('reconstruct');
});

test('a file that is not an image is refused with a readable message', async () => {
  await page.setInputFiles('#reconstruct-file', {
    name: 'notes.png',
    mimeType: 'image/png',
    buffer: Buffer.from('these are notes, not a picture'),
  });
  await page.waitForSelector('#status.error');
  assert.match(await page.locator('#status').innerText(), /Reconstructing failed: .*not a PNG, JPEG or WebP/);
});

test('interpolate: two images, then scrub the slider through the cached frames', async () => {
  await page.fill('#interpolate-frames', '5');
  await page.setInputFiles('#interpolate-a', { name: 'a.png', mimeType: 'image/png', buffer: await testImage(0) });
  await page.setInputFiles('#interpolate-b', {
    name: 'b.webp',
    mimeType: 'image/webp',
    buffer: await testImage(1, 32, 32, 'webp'),
  });
  await page.waitForSelector('#interpolate-result:not([hidden])');
  await timed('#interpolate-time');
  for (const i of [0, 2, 4]) {
    await page.locator('#interpolate-slider').fill(String(i));
    assert.equal(await page.locator('#interpolate-position').innerText(), `frame ${i + 1} of 5`);
    await decodes('#interpolate-frame', `frame ${i}`);
  }
  await shot('interpolate');
  // the same pair again comes from the server's cache
  await page.fill('#interpolate-frames', '5');
  await page.locator('#interpolate-frames').dispatchEvent('change');
  await page.waitForFunction(() => document.querySelector('#interpolate-time')?.textContent?.includes('cached'));
});

test('sample a class at a guidance scale', async () => {
  await page.selectOption('#sample-class', 'triangle');
  await page.fill('#sample-guidance', '3');
  await page.fill('#sample-n', '3');
  await page.click('#sample-go');
  await page.waitForFunction(() => document.querySelectorAll('#sample-images img').length === 3);
  for (let i = 1; i <= 3; i++) await decodes(`#sample-images figure:nth-child(${i}) img`, `sample ${i}`);
  await timed('#sample-time');
  await shot('sample');
});

test('generate from a prompt', async () => {
  await page.fill('#generate-prompt', 'a green triangle');
  await page.fill('#generate-n', '2');
  await page.click('#generate-go');
  await page.waitForFunction(() => document.querySelectorAll('#generate-images img').length === 2);
  for (let i = 1; i <= 2; i++) await decodes(`#generate-images figure:nth-child(${i}) img`, `generated ${i}`);
  await timed('#generate-time');
  await shot('generate');
});

test('a model set with a tokenizer alone: sampling and prompts hidden, no neighbours and why', async () => {
  await page.selectOption('#model', 'plain');
  assert.ok(!(await page.locator('#sample').isVisible()));
  assert.ok(!(await page.locator('#generate').isVisible()));
  assert.match(await page.locator('#neighbours-note').innerText(), /No reference images for this model/);
  await page.setInputFiles('#reconstruct-file', { name: 'c.png', mimeType: 'image/png', buffer: await testImage(1) });
  await page.waitForSelector('#reconstruct-result:not([hidden])');
  await decodes('#reconstruct-output', 'the reconstruction by the plain model');
  assert.equal(await page.locator('#neighbours img').count(), 0);
  await shot('plain');
});
