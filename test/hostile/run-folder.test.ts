// Run-folder hygiene under kills and damage: stale temporary files are cleaned, a resumed run's metrics log has
// no replayed steps, a damaged newest checkpoint falls back to the previous good one (with a warning), checkpoints
// with garbage step or data position are clear errors naming the file, and a failed start leaves no config.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { loadSafetensors, saveSafetensors } from '../../src/io/safetensors.ts';
import { checkpointName, loadCheckpoint } from '../../src/train/checkpoint.ts';
import { ROOT } from '../helpers.ts';
import { syntheticFolder, tinyConfigs, tokenizerTrainArgs } from '../train/fixtures.ts';

const tmp = (p: string) => mkdtempSync(join(tmpdir(), p));
const cli = (out: string, config: string, ...more: string[]) =>
  spawnSync(process.execPath, [join(ROOT, 'bin', 'reptok.mjs'), ...tokenizerTrainArgs(out, config, ...more)], {
    encoding: 'utf8',
    env: { ...process.env, CI: '1' },
    timeout: 120_000,
  });

/** Rewrites one metadata value of a checkpoint (the tensors unchanged). */
function setMetadata(path: string, key: string, value: string): void {
  const { tensors, metadata } = loadSafetensors(path);
  saveSafetensors(path, tensors, { ...metadata, [key]: value });
  for (const t of tensors.values()) t.dispose();
}

test('resume: stale temporaries removed, a damaged newest checkpoint skipped, metrics not duplicated', async () => {
  const data = `folder:${await syntheticFolder()}`;
  const config = join(tmp('reptok-cfg-'), 'tokenizer.json');
  writeFileSync(config, JSON.stringify({ ...tinyConfigs(data).tokenizer, checkpointEvery: 2, keepCheckpoints: 3 }));
  const out = tmp('reptok-run-');
  const first = cli(out, config, '--steps', '4');
  assert.equal(first.status, 0, first.stderr);

  // a kill during a checkpoint write (temp left behind), then damage to the newest checkpoint
  const stale = join(out, `.${checkpointName(6)}.tmp-999999999-1`);
  writeFileSync(stale, 'partial');
  truncateSync(join(out, checkpointName(4)), 100);
  const resumed = cli(out, config, '--steps', '6', '--resume');
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, /warning: cannot resume from .*step-00000004\.safetensors: not a valid safetensors/);
  assert.match(resumed.stderr, /resumed from .*step-00000002\.safetensors at step 2/);
  assert.ok(!existsSync(stale), 'the stale temporary file is still there');
  assert.deepEqual(
    readdirSync(out).filter((f) => f.includes('.tmp-')),
    [],
  );
  const steps = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((r) => r.validation === undefined)
    .map((r) => r.step);
  assert.deepEqual(steps, [1, 2, 3, 4, 5, 6], 'each step logged once');

  // a checkpoint past the run's end is an error, not a silent exit 0
  const past = cli(out, config, '--steps', '3', '--resume');
  assert.equal(past.status, 1);
  assert.match(past.stderr, /step-00000006\.safetensors is at step 6, past the 3 steps of this run; pass --steps 6/);
});

test('checkpoints with a garbage step or data position are errors that name the file', async () => {
  const data = `folder:${await syntheticFolder()}`;
  const config = join(tmp('reptok-cfg-'), 'tokenizer.json');
  writeFileSync(config, JSON.stringify({ ...tinyConfigs(data).tokenizer, checkpointEvery: 1 }));
  const out = tmp('reptok-run-');
  assert.equal(cli(out, config, '--steps', '1').status, 0);
  const path = join(out, checkpointName(1));
  for (const [key, value, problem] of [
    ['step', 'abc', /its step "abc" is not a whole number/],
    ['step', '-1', /its step "-1" is not a whole number/],
    ['step', '1e400', /its step "1e400" is not a whole number/],
    ['data', 'garbage', /its metadata 'data' is not valid JSON/],
    ['data', '{"epoch":-1,"index":0}', /its data position .* is not \{epoch, index\} of whole numbers/],
    ['optimizer', '[', /its metadata 'optimizer' is not valid JSON/],
  ] as const) {
    const copy = join(tmp('reptok-ck-'), checkpointName(1));
    writeFileSync(copy, readFileSync(path));
    setMetadata(copy, key, value);
    assert.throws(
      () => loadCheckpoint(copy),
      (e: Error) => e.message.startsWith(`${copy}: `) && problem.test(e.message),
      `${key}=${value}`,
    );
  }
  // the only checkpoint damaged: --resume stops with every reason, and exits non-zero
  setMetadata(path, 'step', '99999999999999999999');
  const r = cli(out, config, '--steps', '2', '--resume');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /no checkpoint in .* can be resumed from/);
  // a data position past the data set's batches
  setMetadata(path, 'step', '1');
  setMetadata(path, 'data', '{"epoch":0,"index":1000000}');
  const far = cli(out, config, '--steps', '2', '--resume');
  assert.equal(far.status, 1);
  assert.match(far.stderr, /the data position \{"epoch":0,"index":1000000\} is past the \d+ batches of an epoch/);
});

test('a failed start leaves no config.json (the folder does not need --force afterwards)', async () => {
  const data = `folder:${await syntheticFolder()}`;
  const config = join(tmp('reptok-cfg-'), 'tokenizer.json');
  writeFileSync(
    config,
    JSON.stringify({ ...tinyConfigs(data).tokenizer, encoderWeights: '/nonexistent/enc.safetensors' }),
  );
  const out = tmp('reptok-run-');
  const r = cli(out, config, '--steps', '1');
  assert.equal(r.status, 1);
  assert.ok(!existsSync(join(out, 'config.json')), 'config.json was left behind');
  assert.doesNotMatch(r.stderr, /already holds a run/);
});
