// A streaming decode worker (see streaming.ts): reads its share of the samples of every epoch from WebDataset-style
// tar shards (or from a list of image files), shuffles them in a bounded buffer, decodes and resizes them, and posts
// them to the main thread, never more than `prefetch` ahead of what it has consumed. Unreadable samples are
// reported and skipped.
import { parentPort, workerData } from 'node:worker_threads';
import { readFileSync } from 'node:fs';
import { register } from 'tsx/esm/api';

register();
const { readTar } = await import('../io/tar.ts');
const { IMAGE_EXTENSIONS, readImageBytes } = await import('../io/image-decode.ts');
const { Rng, hashInts } = await import('./prng.ts');
const { default: sharp } = await import('sharp');
sharp.cache(false); // libvips' operation cache would hold decoded images: memory must stay flat

const { source, slot, slots, seed, size, channels, prefetch, shuffleBuffer } = workerData;
let { epoch, skip } = workerData;
let credit = prefetch;
let wake = null;
let stopped = false;

parentPort.on('message', (m) => {
  if (m.type === 'ack') credit++;
  if (m.type === 'stop') stopped = true;
  if (wake) {
    const w = wake;
    wake = null;
    w();
  }
});

/** Samples of one tar shard: consecutive members sharing a key (the path up to the first dot of the file name). */
function* tarSamples(path) {
  let cur = null;
  for (const e of readTar(path)) {
    const slash = e.name.lastIndexOf('/');
    const dot = e.name.indexOf('.', slash + 1);
    const key = dot < 0 ? e.name : e.name.slice(0, dot);
    const ext = dot < 0 ? '' : e.name.slice(dot + 1).toLowerCase();
    if (cur && cur.member !== key) {
      yield cur;
      cur = null;
    }
    cur ??= { member: key, key: `${path}:${key}`, image: null, label: 0, caption: '' };
    if (IMAGE_EXTENSIONS.has(`.${ext}`)) cur.image = e.data;
    else if (ext === 'cls') cur.label = Number.parseInt(e.data.toString('utf8').trim(), 10) || 0;
    else if (ext === 'txt') cur.caption = e.data.toString('utf8').trim();
  }
  if (cur) yield cur;
}

/** This worker's samples of `epoch`, in shuffled shard order (whole shards per worker when there are enough). */
function* share(ep) {
  const order = new Rng(hashInts(seed, ep, 7)).permutation(source.items.length);
  const wholeItems = source.items.length >= slots;
  let n = 0;
  for (let i = 0; i < order.length; i++) {
    if (wholeItems && i % slots !== slot) continue;
    const item = source.items[order[i]];
    const samples =
      source.kind === 'tar'
        ? tarSamples(item)
        : [{ key: item, image: null, path: item, label: source.labels[order[i]], caption: '' }];
    for (const s of samples) if (wholeItems || n++ % slots === slot) yield s;
  }
}

async function until(cond) {
  while (!cond() && !stopped) await new Promise((r) => (wake = r));
}

async function run() {
  for (; !stopped; epoch++) {
    const rng = new Rng(hashInts(seed, epoch, slot, 11));
    const buffer = [];
    const emit = async (s) => {
      if (skip > 0) {
        skip--; // resuming: this sample was consumed before the checkpoint
        return;
      }
      await until(() => credit > 0);
      if (stopped) return;
      try {
        const img = await readImageBytes(s.image ?? readFileSync(s.path), { size, channels });
        credit--;
        parentPort.postMessage({ type: 'sample', epoch, pixels: img.data, label: s.label, caption: s.caption }, [
          img.data.buffer,
        ]);
      } catch (e) {
        parentPort.postMessage({ type: 'skip', epoch, key: s.key, reason: e.message });
      }
    };
    for (const s of share(epoch)) {
      if (stopped) return;
      if (!s.image && !s.path) {
        parentPort.postMessage({ type: 'skip', epoch, key: s.key, reason: 'no image in this sample' });
        continue;
      }
      buffer.push(s);
      if (buffer.length >= shuffleBuffer) {
        const j = rng.int(buffer.length);
        [buffer[j], buffer[buffer.length - 1]] = [buffer[buffer.length - 1], buffer[j]];
        await emit(buffer.pop());
      }
    }
    while (buffer.length && !stopped) await emit(buffer.splice(rng.int(buffer.length), 1)[0]);
    parentPort.postMessage({ type: 'end', epoch });
  }
}

run().catch((e) => parentPort.postMessage({ type: 'error', message: e.message }));
