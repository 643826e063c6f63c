#!/usr/bin/env node
// bfloat16 vs float32 training, same recipe, same seeds: a Fashion-MNIST tokenizer (from the shipped SSL encoder)
// and generator (on the shipped float32 tokenizer, so only the generator's precision differs), each trained in both
// precisions side by side (one thread each), then `reptok eval` on each pair. Prints one JSON line per precision
// with the metrics and the training wall time, and a summary line; what docs/bf16.md reports.
//
//   node scripts/bf16-study.mjs [--tokenizer-steps 1000] [--generator-steps 1000] [--runs runs/bf16-study]
//                               [--float32 runs/weights/fashion-mnist-float32]
//
// Needs the float32 files of the shipped models (--float32, default runs/weights/fashion-mnist-float32/, made by
// scripts/train-weights.mjs): the shipped float16 files would put a float16 rounding into both sides.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const opt = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const runs = resolve(opt('runs', join(root, 'runs/bf16-study')));
const tokSteps = Number(opt('tokenizer-steps', '1000'));
const genSteps = Number(opt('generator-steps', '1000'));
const fp32 = resolve(opt('float32', join(root, 'runs/weights/fashion-mnist-float32')));
for (const f of ['encoder', 'tokenizer', 'classifier'])
  if (!existsSync(join(fp32, `${f}.safetensors`)))
    throw new Error(`${join(fp32, f)}.safetensors is missing: run node scripts/train-weights.mjs first`);

/** Runs `reptok ...args` with one libtorch thread; resolves when it exits 0. */
const reptok = (args, log) =>
  new Promise((ok, fail) => {
    mkdirSync(dirname(log), { recursive: true });
    const p = spawn(process.execPath, [join(root, 'bin/reptok.mjs'), ...args], {
      env: { ...process.env, OMP_NUM_THREADS: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('exit', (code) => {
      writeFileSync(log, out);
      if (code === 0) ok(out);
      else fail(new Error(`reptok ${args.join(' ')} exited with ${code}; log: ${log}`));
    });
  });

async function study(precision) {
  const dir = join(runs, precision);
  const t0 = Date.now();
  const set = ['--set', `precision=${precision}`];
  await reptok(
    [
      ...['train', 'tokenizer', '--preset', 'fmnist-tokenizer', '--steps', String(tokSteps), '--force'],
      ...['--out', join(dir, 'tokenizer'), ...set, '--set', 'warmupSteps=300'],
      ...['--set', `encoderWeights=${join(fp32, 'encoder.safetensors')}`],
    ],
    join(dir, 'tokenizer.log'),
  );
  const t1 = Date.now();
  await reptok(
    [
      ...['train', 'generator', '--preset', 'fmnist-generator', '--steps', String(genSteps), '--force'],
      ...['--out', join(dir, 'generator'), ...set, '--set', `tokenizerFile=${join(fp32, 'tokenizer.safetensors')}`],
    ],
    join(dir, 'generator.log'),
  );
  const t2 = Date.now();
  // tokenizer metrics of this precision's tokenizer; generator metrics of this precision's generator (decoded by the
  // shipped float32 tokenizer it was trained on)
  const evalOf = async (tokenizer, generator, name) => {
    const out = join(dir, `eval-${name}`);
    await reptok(
      [
        ...['eval', '--tokenizer', tokenizer, '--generator', generator],
        ...['--classifier', join(fp32, 'classifier.safetensors'), '-o', out, '--json'],
      ],
      join(dir, `eval-${name}.log`),
    );
    return JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
  };
  const tok = await evalOf(join(dir, 'tokenizer/tokenizer.safetensors'), join(fp32, 'generator.safetensors'), 'tok');
  const gen = await evalOf(join(fp32, 'tokenizer.safetensors'), join(dir, 'generator/generator.safetensors'), 'gen');
  return {
    precision,
    tokenizerSteps: tokSteps,
    generatorSteps: genSteps,
    tokenizerWallS: (t1 - t0) / 1000,
    generatorWallS: (t2 - t1) / 1000,
    reconstruction: tok.reconstruction,
    generation: { ...gen.generation, perClassAccuracy: undefined },
  };
}

const results = await Promise.all(['fp32', 'bf16'].map(study));
mkdirSync(runs, { recursive: true });
writeFileSync(join(runs, 'results.json'), JSON.stringify(results, null, 2));
for (const r of results) console.log(JSON.stringify(r));
