// The fuzzer: seeded mutations of valid safetensors, torch.save (.pth) and image files, and random shapes for the
// fused kernels (zero-size dimensions included), each case run in a supervised child (tools/fuzz/supervise.ts: a
// served child that a crash, a hang or a memory bomb ends, restarted for the next case). Reports the counts of
// inputs that loaded, clean errors, errors that leak JavaScript internals, crashes, hangs and memory kills, and the
// peak resident memory; failing inputs are kept for reproduction. Exit status 1 when anything but loads and clean
// errors happened.
//
//   npm run fuzz -- --seconds 60 [--seed 1] [--out DIR]
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';

import { Rng } from '../../src/data/prng.ts';
import { P, dictPickle, f32, pthBytes, safetensorsBytes, tensorPickle } from './build.ts';
import { CaseRunner, ROOT, type Outcome } from './supervise.ts';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    seed: { type: 'string', default: '1' },
    out: { type: 'string' },
    quiet: { type: 'boolean', default: false },
  },
});
const seconds = Number(args.seconds);
const seed = Number(args.seed);
if (!(seconds > 0) || !Number.isSafeInteger(seed)) {
  console.error('usage: npm run fuzz -- --seconds N [--seed S] [--out DIR]');
  process.exit(2);
}
const work = mkdtempSync(join(tmpdir(), 'reptok-fuzz-'));
const keep = args.out ?? join(work, 'failures');
const rng = new Rng(seed);

// ---------------------------------------------------------------------------------------------------------------
// Seeds: small valid files of each kind
// ---------------------------------------------------------------------------------------------------------------

interface Seed {
  kind: string;
  ext: string;
  bytes: Buffer;
  /** For .pth seeds: the pickle alone, mutated and re-zipped with a valid CRC so the unpickler itself is fuzzed. */
  rezip?: (pickle: Buffer) => Buffer;
  pickle?: Buffer;
}

async function seeds(): Promise<Seed[]> {
  const st = safetensorsBytes(
    {
      __metadata__: { format: 'pt', note: 'seed' },
      a: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] },
      b: { dtype: 'I64', shape: [2], data_offsets: [24, 40] },
      c: { dtype: 'F16', shape: [0], data_offsets: [40, 40] },
    },
    Buffer.concat([f32([1, 2, 3, 4, 5, 6]), Buffer.from(new BigInt64Array([7n, -8n]).buffer)]),
  );
  const pkl = dictPickle([
    ['w', tensorPickle(6, 0, [2, 3], [3, 1])],
    ['v', tensorPickle(6, 1, [2], [2])],
    ['n', Buffer.concat([P.emptyDict, P.str('x'), tensorPickle(6, 0, [6], [1]), P.setitem])],
  ]);
  const storages = { '0': [1, 2, 3, 4, 5, 6] };
  const pth = pthBytes(pkl, storages);
  const rezip = (p: Buffer): Buffer => pthBytes(p, storages);
  const pixels = Buffer.from(Array.from({ length: 24 * 16 * 3 }, (_, i) => (i * 37) % 256));
  const raw = { raw: { width: 24, height: 16, channels: 3 as const } };
  return [
    { kind: 'safetensors', ext: 'safetensors', bytes: st },
    { kind: 'pth', ext: 'pth', bytes: pth },
    { kind: 'pth', ext: 'pth', bytes: pth, pickle: pkl, rezip },
    { kind: 'pth', ext: 'pth', bytes: readFileSync(join(ROOT, 'test', 'data', 'pickle-cases.pth')) },
    { kind: 'image', ext: 'png', bytes: await sharp(pixels, raw).png().toBuffer() },
    { kind: 'image', ext: 'jpg', bytes: await sharp(pixels, raw).jpeg().toBuffer() },
    { kind: 'image', ext: 'webp', bytes: await sharp(pixels, raw).webp().toBuffer() },
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------------------------------------------

const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0xfffe, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff];

function mutate(input: Buffer): Buffer {
  let b = Buffer.from(input);
  const n = 1 + rng.int(4);
  for (let k = 0; k < n; k++) {
    const at = rng.int(Math.max(1, b.length));
    switch (rng.int(7)) {
      case 0: // bit flip
        if (b.length) b[at]! ^= 1 << rng.int(8);
        break;
      case 1: // interesting byte
        if (b.length) b[at] = INTERESTING[rng.int(5)]!;
        break;
      case 2: // interesting 32-bit little-endian integer (sizes, offsets, lengths)
        if (at + 4 <= b.length) b.writeUInt32LE(INTERESTING[rng.int(INTERESTING.length)]!, at);
        break;
      case 3: // delete a chunk
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + rng.int(16))]);
        break;
      case 4: // duplicate a chunk
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + 1 + rng.int(64)), b.subarray(at)]);
        break;
      case 5: // random bytes inserted
        b = Buffer.concat([
          b.subarray(0, at),
          Buffer.from(Array.from({ length: 1 + rng.int(8) }, () => rng.int(256))),
          b.subarray(at),
        ]);
        break;
      case 6: // truncate
        b = b.subarray(0, at);
        break;
    }
  }
  return b;
}

/** A random shape of the given rank, dimensions 0..max (0 with probability 1/5). */
const dims = (rank: number, max = 9): number[] =>
  Array.from({ length: rank }, () => (rng.int(5) === 0 ? 0 : 1 + rng.int(max)));

function kernelCase(): { op: string; shapes: number[][] } {
  // mostly shapes the op accepts (then forward and backward run), native or through F.*
  switch (rng.int(5)) {
    case 0: {
      const x = dims(1 + rng.int(3));
      const W = x.at(-1)!;
      const perSample = x.length > 1 && rng.int(2) === 0;
      return { op: 'rmsNorm', shapes: [x, perSample ? [x[0]!, ...Array(x.length - 2).fill(1), W] : [W]] };
    }
    case 1: {
      const x = dims(1 + rng.int(3));
      x[x.length - 1] = 2 * x.at(-1)!;
      return { op: 'swiglu', shapes: [x] };
    }
    case 2: {
      const [B, L, H] = dims(3, 5);
      const d = rng.int(4);
      const e = 2 * d + rng.int(3);
      return { op: 'cosineRopeQK', shapes: [[B!, L!, 3, H!, e], [H!], [B!, H!, L!, d], [B!, H!, L!, d]] };
    }
    case 3: {
      const [B, H, Lq, Lk, e] = dims(5, 7);
      return {
        op: 'attention',
        shapes: [
          [B!, H!, Lq!, e!],
          [B!, H!, Lk!, e!],
          [B!, H!, Lk!, e!],
        ],
      };
    }
    default: {
      const [n, i, o] = [rng.int(5) === 0 ? 0 : 1 + rng.int(40), 16 * rng.int(3), 16 * rng.int(3)];
      return { op: 'linear', shapes: [[n, i], [o, i], [o]] };
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Loop
// ---------------------------------------------------------------------------------------------------------------

const counts = { cases: 0, loaded: 0, cleanErrors: 0, internalErrors: 0, crashes: 0, hangs: 0, memory: 0 };
const byKind: Record<string, number> = {};
let peakRssMb = 0;
const failures: string[] = [];
const runner = new CaseRunner({ heapMb: 512, rssMb: 1024, timeoutMs: 20_000 });
const pool = await seeds();
const deadline = Date.now() + seconds * 1000;

function record(what: string, kind: string, input: Buffer | string, o: Outcome): void {
  counts.cases++;
  byKind[kind] = (byKind[kind] ?? 0) + 1;
  peakRssMb = Math.max(peakRssMb, o.peakRssMb);
  const r = o.report as { ok?: boolean; internal?: boolean; error?: string } | undefined;
  let bad: string | null = null;
  if (o.kind === 'crash') (counts.crashes++, (bad = `crash (${o.signal ?? o.code}): ${o.stderr.slice(-300)}`));
  else if (o.kind === 'hang') (counts.hangs++, (bad = 'hang'));
  else if (o.kind === 'memory') (counts.memory++, (bad = `memory over ${runner.limits.rssMb} MB`));
  else if (r?.ok) counts.loaded++;
  else if (r?.internal) (counts.internalErrors++, (bad = `internal error message: ${r.error}`));
  else counts.cleanErrors++;
  if (bad) {
    mkdirSync(keep, { recursive: true });
    const file = join(keep, `${counts.cases}-${what}`);
    writeFileSync(file, input);
    failures.push(`${file}: ${bad}`);
    if (!args.quiet) console.error(`fuzz: ${file}: ${bad}`);
  }
}

while (Date.now() < deadline) {
  if (rng.int(6) === 0) {
    const c = { ...kernelCase(), native: rng.int(2) === 0 };
    record('kernel.json', 'kernel', JSON.stringify(c), await runner.run('kernel', JSON.stringify(c)));
    continue;
  }
  const s = pool[rng.int(pool.length)]!;
  const bytes = s.rezip ? s.rezip(mutate(s.pickle!)) : mutate(s.bytes);
  const file = join(work, `case.${s.ext}`);
  writeFileSync(file, bytes);
  record(`case.${s.ext}`, s.kind, bytes, await runner.run(s.kind, file));
}
runner.close();

const summary = { seconds, seed, ...counts, byKind, peakRssMb, childStarts: runner.starts };
console.log(JSON.stringify(summary));
if (!args.quiet)
  console.error(
    `fuzz: ${counts.cases} cases in ${seconds} s (seed ${seed}): ${counts.loaded} loaded, ` +
      `${counts.cleanErrors} clean errors, ` +
      `${counts.internalErrors} errors leaking internals, ${counts.crashes} crashes, ${counts.hangs} hangs, ` +
      `${counts.memory} memory kills; peak RSS ${peakRssMb} MB${failures.length ? `; failing inputs in ${keep}` : ''}`,
  );
process.exit(counts.crashes + counts.hangs + counts.memory + counts.internalErrors > 0 ? 1 : 0);
