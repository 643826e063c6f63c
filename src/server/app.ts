// The web demo's HTTP routes (Hono): the page, the JSON API the page calls, /healthz and /metrics. Requests never
// name files: the page's three files are read once at start-up, model sets are chosen by name from those loaded,
// and uploaded images are kept in memory only.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';

import type { Job, JobResult, ModelSetInfo } from './jobs.ts';
import { InferencePool, JobFailedError, JobInputError, JobTimeoutError, QueueFullError } from './inference-pool.ts';
import { Metrics } from './metrics.ts';
import { LruCache } from './lru-cache.ts';
import { UploadError, checkUpload, mib, type UploadLimits } from './uploads.ts';

export interface AppOptions extends UploadLimits {
  /** Jobs computed at once and jobs that may wait (for Retry-After and /metrics). */
  concurrency: number;
  maxQueue: number;
  /** Where unexpected failures are reported (the server's log). */
  log: (message: string) => void;
  /** ODE steps of every decode and generation. */
  steps: number;
  /** Most frames of an interpolation and most images of one sampling request. */
  maxFrames: number;
  maxImages: number;
  /** Neighbours shown beside a reconstruction. */
  neighbours: number;
}

/** A request the API refuses before any work (400), with a message for the person. */
class BadRequest extends Error {}

const PAGE = Object.fromEntries(
  [
    ['/', 'index.html', 'text/html; charset=utf-8'],
    ['/app.js', 'app.js', 'text/javascript; charset=utf-8'],
    ['/style.css', 'style.css', 'text/css; charset=utf-8'],
  ].map(([route, file, type]) => [route, { body: readFileSync(new URL(`./page/${file}`, import.meta.url)), type }]),
) as Record<string, { body: Buffer; type: string }>;

const SECURITY_HEADERS = {
  'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

/** An uploaded image once encoded: its token and how the model sees it. */
interface Upload {
  set: string;
  token: Float32Array;
  original: string; // data URL
}

export function createApp(pool: InferencePool, o: AppOptions): { app: Hono; metrics: Metrics } {
  const app = new Hono();
  const metrics = new Metrics();
  const sets = new Map(pool.info.map((s) => [s.name, s]));
  const uploads = new LruCache<string, Upload>(512);
  const interpolations = new LruCache<string, string[]>(64);
  let meanRunSeconds = 1; // a running mean of job times, for Retry-After

  // ---- every request: security headers, timing, metrics ----------------------------------------------------------
  app.use('*', async (c, next) => {
    const t0 = performance.now();
    await next();
    const seconds = (performance.now() - t0) / 1000;
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) c.header(k, v);
    c.header('Server-Timing', `total;dur=${(seconds * 1000).toFixed(1)}`);
    const route = c.req.routePath && c.req.routePath !== '*' ? c.req.routePath : 'other';
    metrics.observe(route, c.res.status, seconds);
  });
  app.use(
    '/api/*',
    bodyLimit({
      maxSize: o.maxBytes,
      // the rest of the body is not read: close the connection so that the client does not send on it again
      onError: (c) =>
        c.json({ error: `the upload is over the limit of ${mib(o.maxBytes)}` }, 413, { Connection: 'close' }),
    }),
  );

  // ---- the page ----------------------------------------------------------------------------------------------------
  for (const [route, file] of Object.entries(PAGE))
    app.get(route, (c) => c.body(new Uint8Array(file.body), 200, { 'Content-Type': file.type }));

  app.get('/healthz', (c) =>
    c.json({ status: 'ok', models: [...sets.keys()], queued: pool.queued, running: pool.running }),
  );
  app.get('/metrics', (c) =>
    c.text(
      metrics.render({
        queue_depth: { help: 'Requests waiting for an inference process.', value: pool.queued },
        running: { help: 'Requests being computed now.', value: pool.running },
        max_queue: { help: 'Queue length beyond which requests are refused (503).', value: o.maxQueue },
        process_restarts_total: {
          help: 'Inference processes replaced after a timeout or a crash.',
          value: pool.restarts,
        },
        cached_interpolations: { help: 'Interpolations kept for the slider.', value: interpolations.size },
      }),
      200,
      { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' },
    ),
  );

  app.get('/api/models', (c) =>
    c.json({
      models: pool.info,
      limits: { maxBytes: o.maxBytes, maxPixels: o.maxPixels, maxFrames: o.maxFrames, maxImages: o.maxImages },
      steps: o.steps,
    }),
  );

  // ---- inference ---------------------------------------------------------------------------------------------------

  /** Runs a job through the queue; the answer carries the times the page shows. */
  const run = async (c: Context, job: Job) => {
    const r = await pool.run(job, c.req.raw.signal);
    meanRunSeconds = 0.8 * meanRunSeconds + 0.2 * (r.runMs / 1000);
    return r;
  };
  const times = (r: { waitMs: number; runMs: number }) => ({ waitMs: round(r.waitMs), runMs: round(r.runMs) });

  /** Checks an uploaded image, encodes it (or finds it encoded) and keeps its token for interpolations. */
  const upload = async (c: Context, set: ModelSetInfo, kind: 'encode' | 'reconstruct') => {
    const bytes = Buffer.from(await c.req.arrayBuffer());
    await checkUpload(bytes, o);
    const id = createHash('sha256').update(set.name).update('\0').update(bytes).digest('hex').slice(0, 24);
    const known = kind === 'encode' ? uploads.get(id) : undefined;
    if (known) return { id, original: known.original, r: { result: {}, waitMs: 0, runMs: 0 } };
    const base = { set: set.name, steps: o.steps, seed: seedOf(c.req.query('seed')), image: new Uint8Array(bytes) };
    const job: Job = kind === 'encode' ? { ...base, kind } : { ...base, kind, neighbours: o.neighbours };
    const r = await run(c, job);
    const original = dataUrl(r.result.original!);
    uploads.set(id, { set: set.name, token: r.result.token!, original });
    return { id, original, r };
  };

  app.post('/api/encode', async (c) => {
    const { id, original, r } = await upload(c, modelSet(sets, c.req.query('model')), 'encode');
    return c.json({ id, original, ...times(r) });
  });

  app.post('/api/reconstruct', async (c) => {
    const { id, original, r } = await upload(c, modelSet(sets, c.req.query('model')), 'reconstruct');
    const { images, psnr, neighbours } = r.result as Required<JobResult>;
    return c.json({
      id,
      original,
      reconstruction: dataUrl(images[0]!),
      psnr,
      neighbours: neighbours.map((n) => ({ image: dataUrl(n.png), similarity: n.similarity, label: n.label })),
      ...times(r),
    });
  });

  app.post('/api/interpolate', async (c) => {
    const body = await jsonBody(c);
    const set = modelSet(sets, body.model);
    const frames = integer(body.frames ?? 8, 'frames', 2, o.maxFrames);
    const seed = seedOf(body.seed);
    const [a, b] = (['a', 'b'] as const).map((k) => {
      const u = typeof body[k] === 'string' ? uploads.get(body[k]) : undefined;
      if (!u || u.set !== set.name)
        throw new BadRequest(`image '${k}' is not among the recent uploads for ${set.name}: upload it again`);
      return u;
    });
    const key = [set.name, body.a, body.b, frames, o.steps, seed].join('|');
    const cached = interpolations.get(key);
    if (cached) return c.json({ frames: cached, cached: true, waitMs: 0, runMs: 0 });
    const r = await run(c, {
      kind: 'interpolate',
      set: set.name,
      steps: o.steps,
      seed,
      a: a!.token,
      b: b!.token,
      frames,
    });
    const urls = r.result.images!.map(dataUrl);
    interpolations.set(key, urls);
    return c.json({ frames: urls, cached: false, ...times(r) });
  });

  app.post('/api/sample', async (c) => {
    const body = await jsonBody(c);
    const set = modelSet(sets, body.model);
    if (set.classes.length === 0) throw new BadRequest(`${set.name} has no class-conditional generator`);
    const cls = String(body.class ?? '');
    if (!set.classes.includes(cls))
      throw new BadRequest(`unknown class '${cls.slice(0, 40)}'; choose one of ${set.classes.join(', ')}`);
    const job: Job = { kind: 'sample', set: set.name, class: cls, ...generation(body) };
    const r = await run(c, job);
    return c.json({ images: r.result.images!.map(dataUrl), ...times(r) });
  });

  app.post('/api/generate', async (c) => {
    const body = await jsonBody(c);
    const set = modelSet(sets, body.model);
    if (!set.prompts) throw new BadRequest(`${set.name} has no text-to-image model`);
    const prompt = typeof body.prompt === 'string' ? body.prompt.trim() : '';
    if (!prompt || prompt.length > 200) throw new BadRequest('type a prompt of 1 to 200 characters');
    const r = await run(c, { kind: 'generate', set: set.name, prompt, ...generation(body) });
    return c.json({ images: r.result.images!.map(dataUrl), ...times(r) });
  });

  const generation = (body: Record<string, unknown>) => ({
    guidance: number(body.guidance ?? 1.5, 'guidance', 0, 20),
    n: integer(body.n ?? 1, 'n', 1, o.maxImages),
    seed: seedOf(body.seed),
    steps: o.steps,
  });

  // ---- errors: a status and a readable message, never a stack ------------------------------------------------------
  app.notFound((c) => c.json({ error: `nothing at ${c.req.method} ${c.req.path.slice(0, 100)}` }, 404));
  app.onError((e, c) => {
    if (e instanceof UploadError) return c.json({ error: e.message }, e.status);
    if (e instanceof BadRequest) return c.json({ error: e.message }, 400);
    if (e instanceof JobInputError) return c.json({ error: e.message }, 422);
    if (e instanceof QueueFullError) {
      const wait = Math.max(1, Math.ceil((meanRunSeconds * (pool.queued + 1)) / Math.max(1, o.concurrency)));
      c.header('Retry-After', String(wait));
      return c.json({ error: `${e.message}; try again in ${wait} s` }, 503);
    }
    if (e instanceof JobTimeoutError) return c.json({ error: e.message }, 503);
    if (e instanceof JobFailedError) return c.json({ error: e.message }, 500);
    o.log(`${c.req.method} ${c.req.path}: ${(e as Error).stack ?? e}`);
    return c.json({ error: 'the server failed on this request; see its log' }, 500);
  });

  return { app, metrics };
}

// ---- request values: checked, with messages that say what to send -----------------------------------------------

function modelSet(sets: Map<string, ModelSetInfo>, name: unknown): ModelSetInfo {
  // one model set: requests need not name it
  if (name === undefined && sets.size === 1) return [...sets.values()][0]!;
  const set = typeof name === 'string' ? sets.get(name) : undefined;
  if (!set)
    throw new BadRequest(`unknown model '${String(name).slice(0, 40)}'; choose one of ${[...sets.keys()].join(', ')}`);
  return set;
}

async function jsonBody(c: Context): Promise<Record<string, unknown>> {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    throw new BadRequest('the request body must be a JSON object');
  }
  if (!body || typeof body !== 'object' || Array.isArray(body))
    throw new BadRequest('the request body must be a JSON object');
  return body as Record<string, unknown>;
}

function number(v: unknown, name: string, min: number, max: number): number {
  const x = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof x !== 'number' || !Number.isFinite(x) || x < min || x > max)
    throw new BadRequest(`${name} must be a number from ${min} to ${max}`);
  return x;
}

function integer(v: unknown, name: string, min: number, max: number): number {
  const x = number(v, name, min, max);
  if (!Number.isInteger(x)) throw new BadRequest(`${name} must be a whole number from ${min} to ${max}`);
  return x;
}

const seedOf = (v: unknown): number => (v === undefined ? 0 : integer(v, 'seed', 0, 2 ** 31 - 1));
const dataUrl = (png: Uint8Array): string => `data:image/png;base64,${Buffer.from(png).toString('base64')}`;
const round = (ms: number): number => Math.round(ms * 10) / 10;
