// safetensors: round trips of every dtype with metadata, lazy reads, and clear errors for damaged files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { DTYPES, Tensor, arange, randn, tensor, zeros } from '../../src/index.ts';
import { SafetensorsError, SafetensorsFile, loadSafetensors, saveSafetensors } from '../../src/io/index.ts';
import { fixturesRoot } from '../helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'reptok-st-'));

test('every dtype round-trips bit-exactly, with metadata and in order', () => {
  const tensors = new Map<string, Tensor>(DTYPES.map((d) => [`t_${d}`, arange(-3, 9).reshape(3, 4).to(d)]));
  tensors.set('scalar', tensor(2.5));
  tensors.set('empty', zeros([0, 3]));
  const path = join(dir, 'all.safetensors');
  saveSafetensors(path, tensors, { format: 'pt', note: 'ünïcode ✓' });
  const { tensors: back, metadata } = loadSafetensors(path);
  assert.deepEqual([...back.keys()], [...tensors.keys()]);
  assert.deepEqual(metadata, { format: 'pt', note: 'ünïcode ✓' });
  for (const [k, t] of tensors) {
    const b = back.get(k)!;
    assert.equal(b.dtype, t.dtype, k);
    assert.deepEqual(b.shape, t.shape, k);
    assert.ok(b.equal(t), `${k} values`);
  }
  // the header is 8-byte aligned and the data section starts right after it
  const raw = readFileSync(path);
  assert.equal(Number(raw.readBigUInt64LE(0)) % 8, 0);
});

test('reads files written by the reference implementations (PyTorch safetensors)', () => {
  const { tensors, metadata } = loadSafetensors(join(fixturesRoot(), 'dinov2', 'reg-tiny', 'weights.safetensors'));
  assert.deepEqual(tensors.get('pos_embed')!.shape, [1, 1370, 48]);
  assert.equal(typeof metadata, 'object');
});

test('lazy access reads single tensors, converts dtype and lists entries', () => {
  const path = join(dir, 'lazy.safetensors');
  saveSafetensors(path, { a: randn([4, 4]), b: arange(10) });
  const f = SafetensorsFile.open(path);
  assert.deepEqual(f.keys(), ['a', 'b']);
  assert.deepEqual(f.info('b').shape, [10]);
  assert.equal(f.get('b').dtype, 'int64');
  assert.equal(f.get('a', { dtype: 'float64' }).dtype, 'float64');
  assert.throws(() => f.get('zz'), /no tensor named 'zz'/);
  f.close();
  assert.throws(() => f.get('a'), /closed/);
  const only = loadSafetensors(path, { filter: (n) => n === 'b' });
  assert.deepEqual([...only.tensors.keys()], ['b']);
});

test('writes are atomic: a failed save leaves the previous file and no temporary behind', () => {
  const path = join(dir, 'atomic.safetensors');
  saveSafetensors(path, { a: tensor([1, 2, 3]) });
  const disposed = randn([2]);
  disposed.dispose();
  assert.throws(() => saveSafetensors(path, { a: tensor([9]), b: disposed }), /dispose/);
  assert.ok(
    loadSafetensors(path)
      .tensors.get('a')!
      .equal(tensor([1, 2, 3])),
  );
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.includes('.tmp-')),
    [],
  );
});

function damaged(name: string, bytes: Buffer): string {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
}

test('damaged files give errors naming the file and the problem', () => {
  const good = join(dir, 'good.safetensors');
  saveSafetensors(good, { w: randn([8, 8]), b: randn([8]) });
  const bytes = readFileSync(good);
  const headerLen = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString());
  const withHeader = (h: object, data = bytes.subarray(8 + headerLen)): Buffer => {
    const j = Buffer.from(JSON.stringify(h));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(j.length));
    return Buffer.concat([len, j, data]);
  };
  const cases: [string, Buffer, RegExp][] = [
    ['empty', Buffer.alloc(0), /fewer than the 8-byte header length/],
    ['tiny', Buffer.from([1, 2, 3]), /fewer than the 8-byte/],
    [
      'huge-header',
      Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0, 1]), Buffer.alloc(16)]),
      /header claims .* bytes \(limit/,
    ],
    ['truncated-header', bytes.subarray(0, 8 + headerLen - 5), /header claims \d+ bytes but the file has only/],
    ['truncated-data', bytes.subarray(0, bytes.length - 10), /ends at byte .* only \d+ bytes \(truncated/],
    ['bad-json', withHeader({}).fill(0x7b, 9, 10), /not valid JSON/],
    [
      'bad-dtype',
      withHeader({ ...header, w: { ...header.w, dtype: 'F8_E4M3' } }),
      /dtype "F8_E4M3", which reptok does not read/,
    ],
    ['bad-shape', withHeader({ ...header, w: { ...header.w, shape: [8, -1] } }), /invalid shape/],
    [
      'size-mismatch',
      withHeader({ ...header, w: { ...header.w, shape: [8, 9] } }),
      /needs 288 bytes but its data_offsets span 256/,
    ],
    ['bad-offsets', withHeader({ ...header, w: { ...header.w, data_offsets: [10] } }), /invalid data_offsets/],
    ['bad-metadata', withHeader({ ...header, __metadata__: { a: 1 } }), /__metadata__\.a is not a string/],
  ];
  for (const [name, buf, pattern] of cases) {
    const p = damaged(`${name}.safetensors`, buf);
    assert.throws(
      () => loadSafetensors(p),
      (e: Error) => {
        assert.ok(e instanceof SafetensorsError, `${name}: ${e.name}`);
        assert.ok(e.message.startsWith(p), `${name}: message names the file`);
        assert.match(e.message, pattern, name);
        return true;
      },
    );
  }
  assert.throws(
    () => loadSafetensors(join(dir, 'missing.safetensors')),
    /missing\.safetensors: cannot read it \(no such file\)/,
  );
  assert.ok(!existsSync(join(dir, 'missing.safetensors')));
});
