// Hostile and damaged checkpoint and image files (../shared/hostile and variants built here): each must end in a
// clear error naming the file and the problem, or load correctly, with bounded memory and time, and never take the
// process down. Every case runs in a supervised child (tools/fuzz/supervise.ts: V8 heap and resident-memory caps,
// a wall-clock limit), so a regression fails its test instead of killing the runner.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { crc32, deflateRawSync } from 'node:zlib';
import sharp from 'sharp';

import { unpickle } from '../../src/io/pickle.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { CaseRunner, type Outcome } from '../../tools/fuzz/supervise.ts';
import { ROOT } from '../helpers.ts';
import {
  P,
  dictPickle,
  f32,
  pthBytes,
  safetensorsBytes,
  tensorPickle,
  write,
  zipBytes,
} from '../../tools/fuzz/build.ts';

const HOSTILE = resolve(process.env.REPTOK_HOSTILE ?? join(ROOT, '..', 'shared', 'hostile'));
const dir = mkdtempSync(join(tmpdir(), 'reptok-hostile-'));
const runner = new CaseRunner({ heapMb: 384, rssMb: 1024, timeoutMs: 30_000 });
after(() => runner.close());

interface Report {
  ok: boolean;
  error?: string;
  internal?: boolean;
  detail?: any;
}

/** Runs a case in the supervised child; it must end with a report (no crash, hang or memory kill). */
async function run(kind: string, arg: string, options: Record<string, unknown> = {}): Promise<Report> {
  const o: Outcome = await runner.run(kind, arg, options);
  assert.equal(o.kind, 'ok', `${kind} ${arg}: the child ended by ${o.kind} (${o.signal ?? o.code})\n${o.stderr}`);
  assert.ok(o.peakRssMb < 1024, `${kind} ${arg}: peak RSS ${o.peakRssMb} MB`);
  return o.report as Report;
}

/** The case must fail with a message naming `file` and matching `problem`, free of JavaScript internals. */
async function refused(kind: string, file: string, problem: RegExp, options: Record<string, unknown> = {}) {
  const r = await run(kind, file, options);
  assert.equal(r.ok, false, `${file} loaded, but it should have been refused (${JSON.stringify(r.detail)})`);
  assert.ok(r.error!.includes(file), `the error does not name the file: ${r.error}`);
  assert.match(r.error!, problem);
  assert.equal(r.internal, false, `the error shows JavaScript internals: ${r.error}`);
}

const hostile = (name: string): string => join(HOSTILE, name);
const tmp = (name: string, bytes: Buffer): string => write(join(dir, name), bytes);

// ---------------------------------------------------------------------------------------------------------------
// Pickles: shared and cyclic dicts, deep nesting, huge integers, storages as values
// ---------------------------------------------------------------------------------------------------------------

/** A state dict whose sub-dict is shared `depth` times through the memo: 2^depth keys when flattened. */
function dagBomb(depth: number): Buffer {
  // level 0: {'w': tensor}; level i: {'a': level i-1, 'b': level i-1} (each level memoised, then popped)
  const parts: Buffer[] = [P.proto, P.emptyDict, P.str('w'), tensorPickle(1, 0, [1], [1]), P.setitem, P.put(0), P.pop];
  for (let i = 1; i <= depth; i++)
    parts.push(P.emptyDict, P.str('a'), P.get(i - 1), P.setitem, P.str('b'), P.get(i - 1), P.setitem, P.put(i), P.pop);
  parts.push(P.get(depth), P.stop);
  return pthBytes(Buffer.concat(parts), { '0': [1] });
}

test('a dict shared through the pickle memo, a dict inside itself and 100k nested dicts are refused', async () => {
  await refused('pth', hostile('dag-bomb-24.pth'), /appears more than once/);
  await refused('pth', tmp('dag-30.pth', dagBomb(30)), /appears more than once/);
  // the same sub-dict twice at one level (2 keys' worth, but still a shared dict)
  await refused('pth', tmp('dag-1.pth', dagBomb(1)), /appears more than once/);
  // d = {}; d['self'] = d
  const cyclic = Buffer.concat([P.proto, P.emptyDict, P.put(0), P.str('self'), P.get(0), P.setitem, P.stop]);
  await refused('pth', tmp('cyclic.pth', pthBytes(cyclic)), /appears more than once \(or inside itself\)/);
  // {'a': {'a': ... 100k levels ... {'w': tensor}}}, built iteratively by the unpickler
  const depth = 100_000;
  const nested = Buffer.concat([
    P.proto,
    ...Array.from({ length: depth }, () => Buffer.concat([P.emptyDict, P.str('a')])),
    P.emptyDict,
    P.str('w'),
    tensorPickle(1, 0, [1], [1]),
    P.setitem,
    ...Array.from({ length: depth }, () => P.setitem),
    P.stop,
  ]);
  await refused('pth', tmp('nested.pth', pthBytes(nested, { '0': [1] })), /nested deeper than 64 levels/);
  // 60 levels are fine
  const ok = Buffer.concat([
    P.proto,
    ...Array.from({ length: 60 }, () => Buffer.concat([P.emptyDict, P.str('a')])),
    P.emptyDict,
    P.str('w'),
    tensorPickle(1, 0, [1], [1]),
    P.setitem,
    ...Array.from({ length: 60 }, () => P.setitem),
    P.stop,
  ]);
  const r = await run('pth', tmp('nested-60.pth', pthBytes(ok, { '0': [7] })));
  assert.deepEqual(r.detail, { [`${'a.'.repeat(60)}w`]: { shape: [1], values: [7] } });
});

test('LONG4 integers decode in linear time, exactly, and huge ones are refused', async () => {
  await refused('torch', hostile('long4-256k.pth'), /an integer of 262144 bytes \(limit 65536\)/);
  const mib = pthBytes(dictPickle([['n', P.long4(Buffer.alloc(1 << 20, 0x7f))]]));
  await refused('torch', tmp('long4-1mib.pth', mib), /an integer of 1048576 bytes/);
  // within the limit: the exact value (checked in the child through a tensor-free dict: a load that succeeds)
  const r = await run(
    'torch',
    tmp('long4-64k.pth', pthBytes(dictPickle([['n', P.long4(Buffer.alloc(65_536, 0xff))]]))),
  );
  assert.equal(r.ok, true, r.error);
});

test('LONG4 and text integers decode exactly (two’s complement, little-endian)', () => {
  const value = (op: Buffer) => unpickle(Buffer.concat([P.proto, op, P.stop]), { globals: {} });
  assert.equal(value(P.long4(Buffer.from([0xff, 0xff]))), -1);
  assert.equal(value(P.long4(Buffer.from([0x00, 0x80]))), -32768);
  const bytes = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 7 + 3) % 256));
  let expected = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) expected = (expected << 8n) | BigInt(bytes[i]!);
  if (bytes.at(-1)! & 0x80) expected -= 1n << BigInt(8 * bytes.length);
  assert.equal(value(P.long4(bytes)), expected);
  assert.equal(value(Buffer.from('L-12345678901234567890L\n')), -12345678901234567890n);
  assert.throws(() => value(Buffer.from(`L${'9'.repeat(10_001)}\n`)), /an integer of 10001 digits/);
  assert.throws(() => value(Buffer.from('I12abc\n')), /malformed integer '12abc'/);
});

test('a storage returned as a value is refused (it would be a disposed tensor)', async () => {
  await refused('pth', hostile('disposed-tensor.pth'), /returns a raw storage as a value/);
});

test('views: zero strides may expand only within the stated budget; views past their storage are refused', async () => {
  await refused('pth', hostile('expand-4gib.pth'), /maxExpandedBytes/);
  const expand = (size: number[], stride: number[]) =>
    pthBytes(dictPickle([['w', tensorPickle(1, 0, size, stride)]]), { '0': [3] });
  // 16 MiB from one element: within the default 64 MiB budget, and the values are right
  const small = await run('pth', tmp('expand-4x4.pth', expand([4, 4], [0, 0])));
  assert.deepEqual(small.detail.w, { shape: [4, 4], values: Array(16).fill(3) });
  assert.equal((await run('pth', tmp('expand-16m.pth', expand([2048, 2048], [0, 0])))).ok, true);
  await refused('pth', tmp('expand-1g.pth', expand([16384, 16384], [0, 0])), /maxExpandedBytes/);
  await refused('torch', tmp('expand-4x4-tight.pth', expand([4, 4], [0, 0])), /maxExpandedBytes/, {
    maxExpandedBytes: 32,
  });
  // many copies of one storage count against the same budget
  const many = dictPickle(
    Array.from({ length: 40 }, (_, i) => [`w${i}`, tensorPickle(1 << 19, 1, [(1 << 19) - 1], [1])] as [string, Buffer]),
  );
  await refused('pth', tmp('views-40.pth', pthBytes(many, { '0': Array(1 << 19).fill(1) })), /maxExpandedBytes/);
  // out of bounds, negative and malformed
  const view = (offset: number, size: number[], stride: number[]) =>
    pthBytes(dictPickle([['w', tensorPickle(4, offset, size, stride)]]), { '0': [1, 2, 3, 4] });
  await refused('pth', tmp('past-end.pth', view(2, [3], [1])), /reaches past its storage of 4 elements/);
  await refused('pth', tmp('negative.pth', view(0, [2], [-1])), /malformed offset\/size\/stride/);
  const strided = await run('pth', tmp('strided.pth', view(1, [2], [2])));
  assert.deepEqual(strided.detail.w.values, [2, 4]);
});

// ---------------------------------------------------------------------------------------------------------------
// Zip: local headers against the central directory, CRC-32, bounded inflate
// ---------------------------------------------------------------------------------------------------------------

test('zip: a local header disagreeing with the central directory, a bad CRC, an inflate bomb', async () => {
  await refused('pth', hostile('shifted-local-header.pth'), /local header of archive\/data\/0/);
  const pkl = dictPickle([['w', tensorPickle(4, 0, [4], [1])]]);
  const good = pthBytes(pkl, { '0': [1, 2, 3, 4] });
  assert.deepEqual((await run('pth', tmp('good.pth', good))).detail.w.values, [1, 2, 3, 4]);
  // a local header claiming a 4-byte extra field that is not there: the data's first 4 bytes read as a well-formed
  // extra record (id 0x1234, length 0), so the tensor would shift by 4 bytes; it now runs into the central directory
  const shifted = zipBytes([
    { name: 'archive/data.pkl', data: pkl },
    {
      name: 'archive/data/0',
      data: Buffer.concat([Buffer.from([0x34, 0x12, 0, 0]), f32([2, 3, 4])]),
      lieExtraLength: 4,
    },
  ]);
  await refused('pth', tmp('shift-record.pth', shifted), /runs into the central directory/);
  // a data.pkl byte flipped after the CRC was written
  const flipped = Buffer.from(good);
  flipped[30 + 'archive/data.pkl'.length + 3]! ^= 0x01;
  await refused('pth', tmp('crc.pth', flipped), /fails its CRC-32 check|local header/);
  // a deflated entry inflating to 1 GiB while declaring 4 bytes (~1 MB compressed)
  const zeros = Buffer.alloc(1 << 20);
  const bomb = deflateRawSync(Buffer.concat(Array(1024).fill(zeros)), { level: 1 });
  const bombZip = zipBytes([{ name: 'archive/data.pkl', data: Buffer.from('1234'), deflated: bomb }]);
  await refused('pth', tmp('inflate-bomb.pth', bombZip), /does not inflate to its declared 4 bytes/);
  // a deflated pickle that is honest loads
  const honest = zipBytes([
    { name: 'archive/data.pkl', data: pkl, deflated: deflateRawSync(pkl) },
    { name: 'archive/data/0', data: f32([1, 2, 3, 4]) },
  ]);
  assert.deepEqual((await run('pth', tmp('deflated.pth', honest))).detail.w.values, [1, 2, 3, 4]);
});

// ---------------------------------------------------------------------------------------------------------------
// safetensors: the header's structure, and byte ranges that tile the data exactly
// ---------------------------------------------------------------------------------------------------------------

const entry = (begin: number, end: number, shape = [(end - begin) / 4]) => ({
  dtype: 'F32',
  shape,
  data_offsets: [begin, end],
});

test('safetensors: wrong header length, overlaps, gaps and trailing bytes are refused; valid files load', async () => {
  const valid = await run('safetensors', hostile('silent.safetensors'));
  assert.deepEqual(valid.detail, {
    a: { shape: [4], values: [0, 1, 2, 3] },
    b: { shape: [4], values: [10, 20, 30, 40] },
  });
  await refused('safetensors', hostile('silent.safetensors.1'), /1 bytes after the last tensor/);
  await refused('safetensors', hostile('silent.safetensors.2'), /overlaps/);
  await refused('safetensors', hostile('silent.safetensors.3'), /7 bytes after the last tensor/);
  const data = f32([1, 2, 3, 4, 5, 6, 7, 8]);
  const st = (name: string, header: object | string | Buffer, bytes = data, o = {}) =>
    tmp(name, safetensorsBytes(header, bytes, o));
  await refused('safetensors', st('gap.safetensors', { a: entry(0, 8), b: entry(12, 32) }), /a gap of 4 bytes/);
  await refused('safetensors', st('start.safetensors', { a: entry(4, 32) }), /a gap of 4 bytes before tensor 'a'/);
  await refused(
    'safetensors',
    st('overlap.safetensors', { a: entry(0, 16), b: entry(12, 28), c: entry(28, 32) }),
    /overlaps/,
  );
  await refused(
    'safetensors',
    st('long.safetensors', { a: entry(0, 32) }, data, { headerLength: 60 }),
    /not valid UTF-8/,
  );
  // the same tensors in a different order in the header, and empty tensors anywhere, are fine
  const fine = await run(
    'safetensors',
    st('order.safetensors', { b: entry(16, 32), e: entry(16, 16, [0]), a: entry(0, 16) }),
  );
  assert.deepEqual(fine.detail.a.values, [1, 2, 3, 4]);
  assert.deepEqual(fine.detail.b.values, [5, 6, 7, 8]);
});

test('a folder or a missing file passed as a checkpoint is an error naming it', async () => {
  await refused('safetensors', dir, /cannot read it \(a folder, not a file\)/);
  await refused('pth', dir, /cannot read it \(a folder, not a file\)/);
  await refused('safetensors', join(dir, 'missing.safetensors'), /cannot read it \(no such file\)/);
  await refused('pth', join(dir, 'missing.pth'), /missing\.pth: cannot read it \(no such file\)/);
});

test('safetensors from bytes in memory go through the same checks', () => {
  for (const [name, problem] of [
    ['silent.safetensors.1', /\(buffer\): not a valid safetensors file: 1 bytes after the last tensor/],
    ['silent.safetensors.2', /\(buffer\): not a valid safetensors file: tensor 'b' overlaps/],
  ] as const)
    assert.throws(() => SafetensorsFile.open(readFileSync(hostile(name))), problem);
  assert.deepEqual(SafetensorsFile.open(readFileSync(hostile('silent.safetensors'))).keys(), ['a', 'b']);
});

test('safetensors: the header must be a flat object of entries and string metadata, in valid UTF-8', async () => {
  const data = f32([1, 2]);
  const st = (name: string, header: object | string | Buffer) => tmp(name, safetensorsBytes(header, data));
  const a = entry(0, 8);
  await refused(
    'safetensors',
    st('meta-array.safetensors', { __metadata__: ['x'], a }),
    /__metadata__ is not an object/,
  );
  await refused('safetensors', st('meta-str.safetensors', { __metadata__: 'x', a }), /__metadata__ is not an object/);
  await refused(
    'safetensors',
    st('meta-num.safetensors', { __metadata__: { k: 1 }, a }),
    /__metadata__\.k is not a string/,
  );
  await refused(
    'safetensors',
    st('no-dtype.safetensors', { a: { shape: [2], data_offsets: [0, 8] } }),
    /has no 'dtype'/,
  );
  await refused('safetensors', st('tostring.safetensors', { a: { ...a, dtype: 'toString' } }), /dtype "toString"/);
  await refused('safetensors', st('proto.safetensors', { a: { ...a, dtype: '__proto__' } }), /dtype "__proto__"/);
  await refused(
    'safetensors',
    st('dup.safetensors', `{"a":${JSON.stringify(a)},"a":${JSON.stringify(a)}}`),
    /appears twice/,
  );
  const badName = Buffer.concat([
    Buffer.from('{"a\xff'.slice(0, 3), 'latin1'),
    Buffer.from([0xff]),
    Buffer.from(`":${JSON.stringify(a)}}`),
  ]);
  await refused('safetensors', st('utf8.safetensors', badName), /not valid UTF-8/);
  await refused(
    'safetensors',
    st('nested.safetensors', `{"a":{"dtype":"F32","shape":[[2]],"data_offsets":[0,8]}}`),
    /expected a number/,
  );
  await refused(
    'safetensors',
    st('rank.safetensors', { a: { ...a, shape: Array(65).fill(1) } }),
    /more than 64 numbers/,
  );
  // a 100 MB header (the reference limit) is over ours; under ours, 15 MB of '[' and 1.3 M metadata keys are refused
  // by the parser at once, without building anything deep or calling JSON.parse
  const huge = Buffer.alloc(8);
  huge.writeBigUInt64LE(100_000_000n);
  await refused('safetensors', tmp('huge.safetensors', huge), /the header claims 100000000 bytes \(limit 16777216\)/);
  const brackets = Buffer.concat([Buffer.from('{"a":'), Buffer.alloc(15 << 20, '[')]);
  await refused('safetensors', st('brackets.safetensors', brackets), /the entry of tensor 'a' is not an object/);
  const top = Buffer.alloc(15 << 20, '[');
  await refused('safetensors', st('brackets-top.safetensors', top), /expected an object at character 0/);
  const keys = 1_300_000;
  const body = Buffer.alloc(keys * 8 + 64);
  let p = body.write('{"__metadata__":{');
  for (let i = 0; i < keys; i++) p += body.write(`"${(i + 1e6).toString(36)}":"",`, p, 'latin1');
  p += body.write('"z":""}}', p);
  await refused('safetensors', st('metadata-keys.safetensors', body.subarray(0, p)), /more than 65536 keys/);
});

// ---------------------------------------------------------------------------------------------------------------
// Images: the pixel count from the header, before decoding
// ---------------------------------------------------------------------------------------------------------------

/** A PNG whose header claims width × height (no real pixel data). */
function pngHeader(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body) >>> 0);
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateRawSync(Buffer.alloc(16))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

test('images claiming more pixels than the limit are refused from their header; the limit is an option', async () => {
  await refused('image', hostile('bomb-16000x16000.jpg'), /16000×16000 = 256000000 pixels, more than the limit/);
  await refused('image', tmp('bomb.png', pngHeader(30_000, 30_000)), /30000×30000/);
  await refused('image', tmp('wide.png', pngHeader(1 << 20, 64)), /more than the limit/);
  const small = join(dir, 'small.png');
  await sharp(Buffer.alloc(20 * 10 * 3, 128), { raw: { width: 20, height: 10, channels: 3 } }).toFile(small);
  await refused('image', small, /20×10 = 200 pixels, more than the limit of 199/, { maxPixels: 199 });
  assert.deepEqual((await run('image', small, { maxPixels: 200 })).detail, [3, 10, 20]);
});
