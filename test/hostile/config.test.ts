// Hostile configuration: numbers out of range through --set, config files and --steps (one validation path, one-line
// errors naming the key), prototype pollution through --set and --preset, and run folders on pseudo file systems.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { ConfigError } from '../../src/train/config.ts';
import { resolveTrainConfig } from '../../src/train/presets.ts';
import { CaseRunner } from '../../tools/fuzz/supervise.ts';
import { ROOT } from '../helpers.ts';

const resolve = (o: { sets?: string[]; file?: string; steps?: number }) =>
  resolveTrainConfig('tokenizer', 'fmnist-tokenizer', o);

test('numbers out of range are one-line errors naming the key, from --set, a config file and --steps alike', () => {
  const bad: [string, RegExp][] = [
    ['warmupSteps=-10', /'warmupSteps' must be an integer ≥ 0, got -10/],
    ['checkpointEvery=0', /'checkpointEvery' must be an integer ≥ 1, got 0/],
    ['minLrRatio=-1', /'minLrRatio' must be in \[0, 1\], got -1/],
    ['clipGrad=-1', /'clipGrad' must be ≥ 0, got -1/],
    ['emaDecay=2', /'emaDecay' must be in \[0, 1\], got 2/],
    ['betas=[]', /'betas' must have 2 numbers/],
    ['betas=[0.9,1]', /'betas\[1\]' must be in \(0, 1\), got 1/],
    ['threads=-1', /'threads' must be an integer in \[0, \d+\], got -1/],
    ['threads=1000000', /'threads' must be an integer in \[0, \d+\]/],
    ['lr=1e999', /'lr' must be a finite number, got Infinity/],
    ['lr=0', /'lr' must be > 0, got 0/],
    ['prefetch=0', /'prefetch' must be an integer in \[1, 64\], got 0/],
    ['prefetch=-3', /'prefetch' must be an integer in \[1, 64\], got -3/],
    ['steps=1.5', /'steps' must be an integer ≥ 1, got 1.5/],
    ['batchSize=0', /'batchSize' must be an integer ≥ 1/],
    ['tokenizer.decoder.depth=0', /'tokenizer\.decoder\.depth' must be an integer ≥ 1, got 0/],
    ['hflip=1.5', /'hflip' must be in \[0, 1\], got 1.5/],
  ];
  for (const [set, message] of bad) {
    assert.throws(
      () => resolve({ sets: [set] }),
      (e: Error) => e instanceof ConfigError && message.test(e.message) && !e.message.includes('\n'),
      set,
    );
  }
  // the same checks for a config file and for --steps
  const file = join(mkdtempSync(join(tmpdir(), 'reptok-cfg-')), 'c.json');
  writeFileSync(file, JSON.stringify({ emaDecay: 2 }));
  assert.throws(() => resolve({ file }), /'emaDecay' must be in \[0, 1\], got 2/);
  assert.throws(
    () => resolve({ file: join(dirname(file), 'missing.yaml') }),
    (e: Error) =>
      e instanceof ConfigError && /missing\.yaml: cannot read it \(no such file\) \(--config\)/.test(e.message),
  );
  assert.throws(() => resolve({ steps: -5 }), /'steps' must be an integer ≥ 1, got -5/);
  assert.throws(() => resolve({ steps: 1.5 }), /'steps' must be an integer ≥ 1, got 1.5/);
  assert.equal(resolve({ steps: 7, sets: ['prefetch=1', 'emaDecay=0', 'clipGrad=0'] }).steps, 7);
});

test('--set __proto__/constructor keys are unknown keys and never touch Object.prototype', () => {
  for (const set of [
    '__proto__.x=1',
    'constructor.x=1',
    'constructor.prototype.x=1',
    '__proto__=1',
    'a.__proto__.x=1',
  ]) {
    assert.throws(() => resolve({ sets: [set] }), /unknown key/, set);
    assert.equal(({} as Record<string, unknown>).x, undefined, `${set} polluted Object.prototype`);
  }
  const file = join(mkdtempSync(join(tmpdir(), 'reptok-cfg-')), 'c.json');
  writeFileSync(file, '{"__proto__": {"x": 1}}');
  assert.throws(() => resolve({ file }), /unknown key '__proto__'/);
  const yaml = join(mkdtempSync(join(tmpdir(), 'reptok-cfg-')), 'c.yaml');
  writeFileSync(yaml, '__proto__:\n  x: 1\n');
  assert.throws(() => resolve({ file: yaml }), /unknown key '__proto__'/);
  assert.equal(({} as Record<string, unknown>).x, undefined);
  assert.throws(() => resolveTrainConfig('tokenizer', '__proto__'), /unknown preset '__proto__'/);
  assert.throws(() => resolveTrainConfig('tokenizer', 'toString'), /unknown preset 'toString'/);
});

test('the CLI: --steps -5, --preset __proto__, --constructor and `reptok constructor` are errors, not silent', () => {
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [join(ROOT, 'bin', 'reptok.mjs'), ...args], { encoding: 'utf8', timeout: 60_000 });
  const out = join(mkdtempSync(join(tmpdir(), 'reptok-run-')), 'run');
  const steps = cli('train', 'tokenizer', '--preset', 'fmnist-tokenizer', '--out', out, '--steps', '-5');
  assert.notEqual(steps.status, 0);
  assert.match(steps.stderr, /'steps' must be an integer ≥ 1, got -5/);
  const preset = cli('train', 'tokenizer', '--preset', '__proto__', '--out', out);
  assert.equal(preset.status, 2);
  assert.match(preset.stderr, /unknown preset '__proto__'/);
  const option = cli('train', 'tokenizer', '--constructor', 'x');
  assert.equal(option.status, 2);
  assert.match(option.stderr, /unknown option --constructor/);
  const command = cli('constructor');
  assert.equal(command.status, 2);
  assert.match(command.stderr, /unknown command 'constructor'/);
});

test('output folders on pseudo file systems are refused before mkdir (which loops on /proc)', async () => {
  const runner = new CaseRunner({ heapMb: 256, rssMb: 1024, timeoutMs: 30_000 });
  try {
    for (const [path, fs] of [
      ['/proc/reptok-x/y', 'proc'],
      ['/sys/reptok-x', 'sysfs'],
    ]) {
      const o = await runner.run('outdir', path!);
      assert.equal(o.kind, 'ok', `${path}: the child ended by ${o.kind}`);
      const r = o.report as { ok: boolean; error?: string };
      assert.equal(r.ok, false);
      assert.equal(r.error, `${path}: cannot use a folder on the ${fs} pseudo file system as the output folder`);
    }
    const ok = join(mkdtempSync(join(tmpdir(), 'reptok-out-')), 'a', 'b');
    assert.equal(((await runner.run('outdir', ok)).report as { ok: boolean }).ok, true);
  } finally {
    runner.close();
  }
});
