// The web demo's server under hostile and heavy use, on tiny models: refused uploads (empty, oversized, not an
// image, damaged, decompression bombs) get a 4xx and a readable message; a slow client is cut off while others
// are served; 50 concurrent requests against 2 inference processes are all answered (200 or 503 with
// Retry-After); no request path reaches the file system; the process stays up and its memory bounded.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { readFileSync } from 'node:fs';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';

import { peakRss, serve, type Served } from '../../tools/serve-process.ts';
import { testImage, tinyModelFolder } from './serve-helpers.ts';

let s: Served;
before(async () => {
  const dir = await tinyModelFolder();
  const limits = ['--max-upload', '1', '--max-pixels', '4', '--request-timeout', '2', '--threads', '1'];
  s = await serve(['--model', dir, '--steps', '2', '--concurrency', '2', '--queue', '4', ...limits]);
});
after(async () => {
  assert.equal(await s.stop(), 0, `the server did not stop cleanly:\n${s.log()}`);
});

const post = (path: string, body: string | Uint8Array, type = 'application/octet-stream') =>
  fetch(new URL(path, s.url), { method: 'POST', body, headers: { 'Content-Type': type } });

async function refused(r: Response, status: number, words: RegExp): Promise<void> {
  const body = (await r.json()) as { error: string };
  assert.equal(r.status, status, body.error);
  assert.match(body.error, words);
  assert.doesNotMatch(body.error, /at \w+ \(|TypeError|undefined/); // a message for people, no JS internals
}

// ---- crafted images ------------------------------------------------------------------------------------------------

/** A PNG whose header declares w×h pixels (valid chunks and CRCs; one row of data). */
function pngDeclaring(w: number, h: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 0, 0, 0, 0], 8); // 8-bit gray
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.alloc(1 + Math.min(w, 1000)))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A small real JPEG with the frame header (SOF0) rewritten to declare w×h pixels. */
async function jpegDeclaring(w: number, h: number): Promise<Buffer> {
  const jpg = await testImage(0, 16, 16, 'jpeg');
  for (let i = 2; i < jpg.length - 9; i++)
    if (jpg[i] === 0xff && jpg[i + 1] === 0xc0) {
      jpg.writeUInt16BE(h, i + 5);
      jpg.writeUInt16BE(w, i + 7);
      return jpg;
    }
  throw new Error('no SOF0 marker in the test JPEG');
}

/** A WebP (VP8X) whose canvas is declared w×h. */
function webpDeclaring(w: number, h: number): Buffer {
  const vp8x = Buffer.alloc(10);
  vp8x.writeUIntLE(w - 1, 4, 3);
  vp8x.writeUIntLE(h - 1, 7, 3);
  const chunk = Buffer.concat([Buffer.from('VP8X'), Buffer.from([10, 0, 0, 0]), vp8x]);
  const riff = Buffer.concat([Buffer.from('RIFF'), Buffer.alloc(4), Buffer.from('WEBP'), chunk]);
  riff.writeUInt32LE(riff.length - 8, 4);
  return riff;
}

// ---- tests ---------------------------------------------------------------------------------------------------------

test('healthz, metrics and the model list answer', async () => {
  const h = (await (await fetch(new URL('/healthz', s.url))).json()) as any;
  assert.equal(h.status, 'ok');
  const m = (await (await fetch(new URL('/api/models', s.url))).json()) as any;
  assert.equal(m.models.length, 1);
  assert.deepEqual(m.models[0].imageSize, [16, 16]);
  assert.equal(m.models[0].references.count, 6);
  const text = await (await fetch(new URL('/metrics', s.url))).text();
  assert.match(text, /reptok_queue_depth 0/);
  assert.match(text, /reptok_requests_total\{route="\/healthz",status="200"\} 1/);
});

test('uploads that are not acceptable images are refused with a readable message', async () => {
  await refused(await post('/api/reconstruct', new Uint8Array(0)), 400, /empty/);
  await refused(await post('/api/reconstruct', Buffer.from('GIF89a not really')), 415, /not a PNG, JPEG or WebP/);
  // text sent as an image: the type and the name the client claims do not matter, the bytes do
  await refused(await post('/api/reconstruct', Buffer.from('hello, I am a .png'), 'image/png'), 415, /by its bytes/);
  await refused(await post('/api/reconstruct', Buffer.alloc(2 ** 20 + 10, 1), 'image/png'), 413, /limit/);
  const gif = await sharp(await testImage(0))
    .gif()
    .toBuffer();
  await refused(await post('/api/reconstruct', gif, 'image/png'), 415, /not a PNG, JPEG or WebP/);
  // damaged: a real header, then the data cut off or garbled
  const png = await testImage(1);
  await refused(await post('/api/reconstruct', png.subarray(0, 20)), 422, /damaged/);
  const garbled = Buffer.from(png);
  garbled.fill(0x55, 40);
  await refused(await post('/api/reconstruct', garbled), 422, /cannot read the image|damaged/);
  await refused(await post('/api/reconstruct', Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0])), 422, /damaged/);
});

test('decompression bombs are refused from their header, before any decoding', async () => {
  const bombs: [string, Buffer][] = [
    ['shipped 16000×16000 JPEG', readFileSync('/work/shared/hostile/bomb-16000x16000.jpg')],
    ['PNG 100000×100000', pngDeclaring(100_000, 100_000)],
    ['PNG 3000×3000', pngDeclaring(3000, 3000)],
    ['JPEG 30000×30000', await jpegDeclaring(30_000, 30_000)],
    ['WebP 16384×16384', webpDeclaring(16_384, 16_384)],
  ];
  for (const [what, bytes] of bombs) {
    assert.ok(bytes.length < 2000, `${what} should be small`);
    const r = await post('/api/reconstruct', bytes);
    const body = (await r.json()) as any;
    assert.ok([413, 422].includes(r.status), `${what}: ${r.status} ${body.error}`);
    if (r.status === 413) assert.match(body.error, /declares \d+×\d+ pixels/, what);
  }
  const h = (await (await fetch(new URL('/healthz', s.url))).json()) as any;
  assert.equal(h.status, 'ok');
});

test('no request path reaches the file system', async () => {
  for (const path of ['/../package.json', '/%2e%2e/package.json', '/app.js/..%2f..%2fpackage.json', '/page/index.html'])
    assert.equal((await fetch(new URL(path, s.url))).status, 404, path);
  const r = await post('/api/reconstruct?model=..%2F..%2Fetc', await testImage(0));
  await refused(r, 400, /unknown model/);
  await refused(
    await post('/api/interpolate', '{"a":"../x","b":"/etc/passwd"}', 'application/json'),
    400,
    /upload it again/,
  );
});

test('a slow client is cut off and does not hold up others', async () => {
  const { hostname, port } = new URL(s.url);
  const sock = connect(Number(port), hostname);
  const closed = new Promise<string>((resolve) => {
    let data = '';
    sock.on('data', (d) => (data += d));
    sock.on('close', () => resolve(data));
  });
  sock.write(`POST /api/reconstruct HTTP/1.1\r\nHost: ${hostname}\r\nContent-Length: 5000\r\n\r\n`);
  sock.write(Buffer.alloc(10, 0x89)); // ... and nothing more
  const h = await fetch(new URL('/healthz', s.url));
  assert.equal(h.status, 200);
  // --request-timeout 2: Node answers 408 and closes (were it never cut off, the test runner's watchdog would fail it)
  const answer = await closed;
  assert.ok(answer === '' || /^HTTP\/1\.1 408/.test(answer), answer);
});

test('50 concurrent requests against 2 processes: all answered, the server stays up, memory bounded', async (t) => {
  const images = await Promise.all([0, 1, 2].map((i) => testImage(i)));
  const enc = (await (await post('/api/encode', images[0]!)).json()) as any;
  const enc2 = (await (await post('/api/encode', images[1]!)).json()) as any;
  const requests = Array.from({ length: 50 }, (_, i) =>
    i % 3 === 0
      ? post('/api/reconstruct', images[i % 3]!, 'image/png')
      : i % 3 === 1
        ? post('/api/sample', JSON.stringify({ class: 'square', n: 2, seed: i }), 'application/json')
        : post('/api/interpolate', JSON.stringify({ a: enc.id, b: enc2.id, frames: 4, seed: i }), 'application/json'),
  );
  const answers = await Promise.all(requests);
  const counts: Record<number, number> = {};
  for (const r of answers) {
    counts[r.status] = (counts[r.status] ?? 0) + 1;
    const body = (await r.json()) as any;
    if (r.status === 503) assert.match(r.headers.get('Retry-After') ?? '', /^\d+$/, body.error);
    else assert.equal(r.status, 200, body.error);
  }
  assert.ok(counts[503]! > 0 && counts[200]! > 0, JSON.stringify(counts));
  const h = (await (await fetch(new URL('/healthz', s.url))).json()) as any;
  assert.equal(h.status, 'ok');
  assert.equal(s.proc.exitCode, null);
  const metrics = await (await fetch(new URL('/metrics', s.url))).text();
  assert.match(metrics, /reptok_requests_total\{route="\/api\/sample",status="503"\} \d+/);
  const rss = peakRss(s.proc.pid!);
  const total = [...rss.values()].reduce((a, b) => a + b, 0);
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  t.diagnostic(`answers: ${JSON.stringify(counts)}`);
  t.diagnostic(`peak RSS: ${[...rss.values()].map(mib).join(' + ')} = ${mib(total)} (server + inference processes)`);
  assert.equal(rss.size, 3, 'the server and its 2 inference processes');
  assert.ok(total < 3 * 2 ** 30, `peak RSS ${total} bytes`);
});
