// An inference process of the web demo: loads every model set once, then runs the jobs its parent sends, one at a
// time. Running models in separate processes keeps the server answering (healthz, metrics, 503s) while they
// compute, and lets the parent stop a job that runs past its time limit by ending the process.
import { setNumThreads, tensor, tidy, type Tensor } from '../engine/index.ts';
import { imagesTensor } from '../data/image-array.ts';
import { psnr } from '../eval/metrics.ts';
import { encodePng } from '../io/image.ts';
import { onHost } from '../pipeline/host.ts';
import { RepTok } from '../pipeline/reptok.ts';
import { loadSampleImages } from '../pipeline/sample-images.ts';
import type { FromWorker, Job, JobResult, ModelSetInfo, Neighbour, ToWorker, WorkerInit } from './jobs.ts';

/** A failure caused by the request's input (answered 4xx), not by the server. */
class InputError extends Error {}
class DeadlineError extends Error {}

interface Loaded {
  rt: RepTok;
  info: ModelSetInfo;
  /** Reference images (R, C, H, W) in [-1, 1], their unit-norm tokens (R, D) and labels, when there are some. */
  references: { images: Tensor; tokens: Tensor; labels: (string | null)[] } | null;
}

const send = (m: FromWorker) => process.send!(m);
const sets = new Map<string, Loaded>();

// ---- start-up ----------------------------------------------------------------------------------------------------

/** Loads every model set of `init` (once, at start-up). */
export async function load(init: WorkerInit): Promise<void> {
  if (init.threads > 0) setNumThreads(init.threads);
  for (const s of init.sets) {
    const rt = RepTok.load(s.sources);
    const found = init.references > 0 ? await loadSampleImages(rt, { dir: s.dir, n: init.references }) : null;
    let references: Loaded['references'] = null;
    if (found?.images) {
      const d = found.images;
      const images = imagesTensor(
        d,
        Int32Array.from({ length: d.n }, (_, i) => i),
      );
      const tokens = tidy(() => unit(rt.encode(images)));
      const labels = Array.from(d.labels, (l) => (l >= 0 ? (d.classes[l] ?? null) : null));
      references = { images, tokens, labels };
    }
    const t2i = rt.models.t2i;
    sets.set(s.name, {
      rt,
      references,
      info: {
        name: s.name,
        imageSize: rt.imageSize,
        channels: rt.channels,
        tokenDim: rt.tokenDim,
        classes: rt.generator && rt.generator.config.numClasses > 0 ? rt.classes : [],
        prompts: !!t2i,
        vocabulary: (t2i?.data.vocabulary ?? []).filter((w) => !/^[<[]/.test(w)),
        references: found?.images
          ? { count: found.images.n, from: found.from }
          : { count: 0, why: found ? found.why : 'the server was started with --references 0' },
      },
    });
  }
}

// ---- jobs --------------------------------------------------------------------------------------------------------

const unit = (t: Tensor) => t.div(t.norm(2, 1, true).clamp(1e-12));
const png = async (images: Tensor, i: number): Promise<Uint8Array> => {
  const img = images.select(0, i);
  try {
    return await encodePng(img);
  } finally {
    img.dispose();
  }
};
const pngs = (images: Tensor) => Promise.all(Array.from({ length: images.shape[0]! }, (_, i) => png(images, i)));

/** Runs one job on a loaded model set; past `deadline` (ms since the epoch) it stops at the next ODE step. */
export async function run(job: Job, deadline: number): Promise<JobResult> {
  const set = sets.get(job.set);
  if (!set) throw new InputError(`no model set '${job.set}'`);
  const { rt } = set;
  // every ODE step reports progress: the place to stop a job that has run out of time
  const onProgress = () => {
    if (Date.now() > deadline) throw new DeadlineError('the request ran past the time limit');
  };
  const o = { steps: job.steps, seed: job.seed, onProgress };
  switch (job.kind) {
    case 'encode':
    case 'reconstruct': {
      let image: Tensor;
      try {
        image = await rt.readImages([Buffer.from(job.image)]);
      } catch (e) {
        throw new InputError(
          (e as Error).message.replace(/^cannot read image \(buffer\): /, 'cannot read the image: '),
        );
      }
      const tokens = rt.encode(image);
      try {
        const result: JobResult = {
          original: await png(image, 0),
          token: Float32Array.from(tidy(() => tokens.select(0, 0).to({ dtype: 'float32', device: 'cpu' }).data())),
        };
        if (job.kind === 'encode') return result;
        const recon = onHost(rt.decode(tokens, o)); // the image read from the upload is on the host
        result.images = await pngs(recon);
        result.psnr = psnr(recon, image);
        recon.dispose();
        result.neighbours = await neighbours(set, tokens, job.neighbours);
        return result;
      } finally {
        image.dispose();
        tokens.dispose();
      }
    }
    case 'interpolate': {
      const [a, b] = [job.a, job.b].map((v) => tensor(v, { device: rt.device }));
      try {
        const { images, tokens } = rt.interpolate(a!, b!, { ...o, frames: job.frames });
        tokens.dispose();
        const out = await pngs(images);
        images.dispose();
        return { images: out };
      } finally {
        a!.dispose();
        b!.dispose();
      }
    }
    case 'sample':
    case 'generate': {
      const g =
        job.kind === 'sample'
          ? rt.sample({
              ...o,
              classes: [inputCheck(() => rt.classIndices([job.class]))[0]!],
              n: job.n,
              guidance: job.guidance,
            })
          : rt.generate([job.prompt], { ...o, n: job.n, guidance: job.guidance });
      g.tokens.dispose();
      const out = await pngs(g.images);
      g.images.dispose();
      return { images: out };
    }
  }
}

function inputCheck<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new InputError((e as Error).message);
  }
}

/** The `k` reference images whose tokens point most nearly the way `token` (1, D) does. */
async function neighbours(set: Loaded, token: Tensor, k: number): Promise<Neighbour[]> {
  const refs = set.references;
  if (!refs || k <= 0) return [];
  const sims = Array.from(tidy(() => refs.tokens.matmul(unit(token).transpose(0, 1)).squeeze(1).to('cpu').data()));
  const order = sims
    .map((s, i) => [s, i] as const)
    .sort((x, y) => y[0] - x[0])
    .slice(0, k);
  return Promise.all(
    order.map(async ([similarity, i]) => ({ png: await png(refs.images, i), similarity, label: refs.labels[i]! })),
  );
}

// ---- messages ----------------------------------------------------------------------------------------------------

/** Serves the parent's messages (worker-main.mjs calls this in a process forked by the pool). */
export function serveParent(): void {
  process.on('message', async (m: ToWorker) => {
    if (m.type === 'init') {
      try {
        await load(m.init);
        send({ type: 'ready', sets: [...sets.values()].map((s) => s.info) });
      } catch (e) {
        send({ type: 'failed', message: (e as Error).message });
      }
      return;
    }
    try {
      send({ type: 'done', id: m.id, result: await run(m.job, m.deadline) });
    } catch (e) {
      const kind = e instanceof InputError ? 'input' : e instanceof DeadlineError ? 'timeout' : 'internal';
      send({ type: 'error', id: m.id, message: (e as Error).message, kind });
    }
  });
  // the parent gone (the server stopped or crashed): nothing left to work for
  process.on('disconnect', () => process.exit(0));
}
