// The trainer through the `reptok train` command: exact resume after kill -9, Ctrl-C, non-finite losses, run-folder
// protection, and unreadable images in a folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { loadCheckpoint, checkpointName } from '../../src/train/checkpoint.ts';
import { ROOT } from '../helpers.ts';
import { syntheticFolder, tinyConfigs, tokenizerTrainArgs } from './fixtures.ts';

const CLI = join(ROOT, 'bin', 'reptok.mjs');
const tmp = (p: string) => mkdtempSync(join(tmpdir(), p));

function configFile(data: string, extra: object = {}): string {
  const file = join(tmp('reptok-cfg-'), 'tokenizer.json');
  writeFileSync(file, JSON.stringify({ ...tinyConfigs(data).tokenizer, ...extra }));
  return file;
}

const runCli = (args: string[]) =>
  spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, CI: '1' } });

/**
 * Starts the CLI paused after step `pauseAfter` (REPTOK_TRAIN_PAUSE_AFTER: the trainer says so on stderr and waits
 * for a signal) and sends it `signal` once it says so: the run is stopped at that step, whatever the machine's speed.
 */
function killAfterStep(
  args: string[],
  pauseAfter: number,
  signal: NodeJS.Signals,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve) => {
    const env = { ...process.env, CI: '1', REPTOK_TRAIN_PAUSE_AFTER: String(pauseAfter) };
    const child = spawn(process.execPath, [CLI, ...args], { env });
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (d) => {
      stderr += d;
      if (!sent && stderr.includes(`paused after step ${pauseAfter} `)) {
        sent = true;
        child.kill(signal);
      }
    });
    child.on('exit', (code, sig) => resolve({ code, signal: sig, stderr }));
  });
}

test('N steps equal N/2 steps, kill -9, --resume, N/2 steps (weights, EMA and optimizer bit-identical)', async () => {
  const data = `folder:${await syntheticFolder()}`;
  const config = configFile(data, { checkpointEvery: 12, keepCheckpoints: 5 });
  const [a, b] = [tmp('reptok-a-'), tmp('reptok-b-')];
  const full = runCli(tokenizerTrainArgs(a, config, '--steps', '24'));
  assert.equal(full.status, 0, full.stderr);

  // killed during step 13, after the step-12 checkpoint and before the next
  const killed = await killAfterStep(tokenizerTrainArgs(b, config, '--steps', '24'), 13, 'SIGKILL');
  assert.equal(killed.signal, 'SIGKILL', killed.stderr);
  assert.ok(existsSync(join(b, checkpointName(12))), 'the step-12 checkpoint was written before the kill');
  assert.ok(!existsSync(join(b, checkpointName(24))), 'the run was killed before its end');
  const resumed = runCli(tokenizerTrainArgs(b, config, '--steps', '24', '--resume'));
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, /resumed from .*step-00000012\.safetensors at step 12/);

  const [ca, cb] = [loadCheckpoint(join(a, checkpointName(24))), loadCheckpoint(join(b, checkpointName(24)))];
  for (const part of ['model', 'ema'] as const) {
    for (const [k, v] of ca[part]!) assert.ok(v.equal(cb[part]!.get(k)!), `${part} ${k} differs after resuming`);
  }
  for (const [k, v] of ca.optimizer.tensors) assert.ok(v.equal(cb.optimizer.tensors.get(k)!), `optimizer ${k} differs`);
  assert.deepEqual(ca.data, cb.data);
});

test('Ctrl-C writes a checkpoint and exits cleanly; --resume continues from it', async () => {
  const data = `folder:${await syntheticFolder()}`;
  const out = tmp('reptok-int-');
  const config = configFile(data, { checkpointEvery: 3 });
  const r = await killAfterStep(tokenizerTrainArgs(out, config, '--steps', '400'), 4, 'SIGINT');
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /interrupted: checkpoint .*step-00000004\.safetensors written; continue with --resume/);
  const interruptedAt = 4; // between the periodic checkpoints (every 3 steps): the interruption writes its own
  assert.ok(existsSync(join(out, checkpointName(interruptedAt))));
  const again = runCli(tokenizerTrainArgs(out, config, '--steps', String(interruptedAt + 2), '--resume'));
  assert.equal(again.status, 0, again.stderr);
});

test('a non-finite loss stops the run with the step, the last good checkpoint and advice', async () => {
  const data = `folder:${await syntheticFolder()}`;
  const out = tmp('reptok-nan-');
  const r = runCli(
    tokenizerTrainArgs(
      out,
      configFile(data, { lr: 1e12, clipGrad: 0, warmupSteps: 0, checkpointEvery: 1 }),
      '--steps',
      '50',
    ),
  );
  assert.equal(r.status, 1);
  assert.match(
    r.stderr,
    new RegExp(
      'the loss became (NaN|Infinity|-Infinity) at step \\d+; training stopped\\. The last good checkpoint is ' +
        '.*step-\\d{8}\\.safetensors\\.\\nTry a lower learning rate',
    ),
  );
});

test('an existing run folder is not overwritten without --resume or --force', async () => {
  const data = `folder:${await syntheticFolder()}`;
  const out = tmp('reptok-exists-');
  const config = configFile(data);
  assert.equal(runCli(tokenizerTrainArgs(out, config, '--steps', '1')).status, 0);
  const again = runCli(tokenizerTrainArgs(out, config, '--steps', '1'));
  assert.equal(again.status, 1);
  assert.match(again.stderr, /already holds a run; pass --resume to continue it or --force to start over/);
  assert.equal(runCli(tokenizerTrainArgs(out, config, '--steps', '1', '--force')).status, 0);
  const file = join(out, 'config.json'); // a file where the run folder goes
  const onFile = runCli(tokenizerTrainArgs(file, config, '--steps', '1'));
  assert.equal(onFile.status, 1);
  assert.match(onFile.stderr, /config\.json is a file, not a folder \(the run folder\)/);
});

test('unreadable images are skipped and reported once with their paths; bad configs are clear errors', async () => {
  const root = await syntheticFolder();
  writeFileSync(join(root, 'left', 'broken.png'), 'not an image');
  writeFileSync(join(root, 'right', 'truncated.jpg'), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0x10]));
  const out = tmp('reptok-bad-');
  const r = runCli(tokenizerTrainArgs(out, configFile(`folder:${root}`), '--steps', '1'));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /skipped 2 unreadable file\(s\):\n {2}.*left\/broken\.png: .*\n {2}.*right\/truncated\.jpg: /);
  assert.equal((r.stderr.match(/skipped 2 unreadable/g) ?? []).length, 1, 'reported once');
  const empty = tmp('reptok-empty-');
  const e = runCli(tokenizerTrainArgs(tmp('reptok-x-'), configFile(`folder:${empty}`), '--steps', '1'));
  assert.equal(e.status, 1);
  assert.match(e.stderr, /holds no images/);
  const typo = runCli(tokenizerTrainArgs(tmp('reptok-y-'), configFile(`folder:${root}`), '--set', 'lr=fast'));
  assert.match(typo.stderr, /'lr' must be a number/);
  const unknown = runCli(tokenizerTrainArgs(tmp('reptok-z-'), configFile(`folder:${root}`), '--set', 'learningRate=1'));
  assert.match(unknown.stderr, /unknown key 'learningRate'/);
});
