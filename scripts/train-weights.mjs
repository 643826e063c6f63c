#!/usr/bin/env node
// Trains the models that ship in weights/ with reptok's own CLI, evaluates them with `reptok eval`, stores them in
// float16 (evaluated again: the cards show both), and writes a model card beside each file. Long (hours on 2 cores):
// every stage resumes where it stopped and every finished step is skipped, so the script can be run again after an
// interruption or across sessions.
//
//   node scripts/train-weights.mjs                 everything (fashion-mnist, then emoji)
//   node scripts/train-weights.mjs fashion-mnist   one family
//   node scripts/train-weights.mjs --dry-run       print the commands only
//   node scripts/train-weights.mjs --steps-scale 0.01 --runs /tmp/r --weights /tmp/w   a quick rehearsal
//
//   runs/weights/<family>-<model>/   the run folders (kept for resuming; their metrics.jsonl is the learning curve)
//   runs/weights/<family>-float32/   the trained float32 files, and their evaluation in eval/
//   weights/<family>/                what ships: the float16 files, samples/, eval/ (of these files),
//                                    eval-float32.json (the float32 report) and a card <model>.md per model
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { FAMILIES } from './weights-recipes.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
/** The dtype the shipped files store their weights in (the models compute in float32 either way). */
const STORE = 'float16';

// --flag, --option value, and the family names
const opts = { dryRun: false, stepsScale: '1', runs: join(root, 'runs', 'weights'), weights: join(root, 'weights') };
const chosen = [];
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--dry-run') opts.dryRun = true;
  else if (a === '--steps-scale' || a === '--runs' || a === '--weights') {
    const v = process.argv[++i];
    if (v === undefined) throw new Error(`${a} needs a value`);
    opts[a === '--steps-scale' ? 'stepsScale' : a.slice(2)] = v;
  } else if (a.startsWith('--')) throw new Error(`unknown option ${a}`);
  else chosen.push(a);
}
const dryRun = opts.dryRun;
const stepsScale = Number(opts.stepsScale);
const runsDir = opts.runs;
const weightsDir = opts.weights;
if (!(stepsScale > 0)) throw new Error(`--steps-scale must be a positive number, got ${opts.stepsScale}`);

/** Runs a node script of this repository (bin/reptok.mjs, or a .ts one through tsx); its stdout is returned. */
const node = (script, args) => {
  console.log(`$ ${script === 'bin/reptok.mjs' ? 'reptok' : script} ${args.join(' ')}`);
  if (dryRun) return '';
  const pre = script.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const r = spawnSync(process.execPath, [...pre, join(root, script), ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });
  process.stdout.write(r.stdout ?? '');
  if (r.status !== 0) throw new Error(`${script} ${args[0]} failed (exit ${r.status}); fix it and run again`);
  return r.stdout;
};
const reptok = (args) => node('bin/reptok.mjs', args);

const hasCheckpoint = (dir) => existsSync(dir) && readdirSync(dir).some((f) => /^step-\d+\.safetensors$/.test(f));
const has = (dir, model) => existsSync(join(dir, `${model}.safetensors`));

// ---- training --------------------------------------------------------------------------------------------------------

function trainFamily(family, recipes) {
  const outDir = join(weightsDir, family);
  const fp32Dir = join(runsDir, `${family}-float32`);
  if (!dryRun) for (const d of [outDir, fp32Dir]) mkdirSync(d, { recursive: true });
  // later stages train on the float32 files (the shipped float16 ones when only those are here)
  const fileOf = (model) => join(has(fp32Dir, model) || !has(outDir, model) ? fp32Dir : outDir, `${model}.safetensors`);
  const cards = [];
  for (const r of recipes) {
    const run = join(runsDir, `${family}-${r.model}`);
    const steps = Math.max(1, Math.round(r.steps * stepsScale));
    const command = (out, file) => {
      const cmd = ['train', r.stage, '--preset', r.preset, '--out', out, '--steps', String(steps)];
      for (const s of r.sets)
        cmd.push(
          '--set',
          s.replace(/\{file:(\w+)\}/, (_, m) => file(m)),
        );
      return cmd;
    };
    // the card shows the command with the default folders, as run from the repository's root
    const shown = command(
      `runs/weights/${family}-${r.model}`,
      (m) => `runs/weights/${family}-float32/${m}.safetensors`,
    );
    cards.push({ ...r, steps, command: `reptok ${shown.join(' ')}`, run });
    if (has(fp32Dir, r.model) || has(outDir, r.model)) {
      console.log(`${family}/${r.model}: trained already, skipped`);
      continue;
    }
    const t0 = Date.now();
    const cmd = command(run, fileOf);
    reptok(hasCheckpoint(run) ? [...cmd, '--resume'] : [...cmd, '--force']);
    if (!dryRun) {
      copyFileSync(join(run, `${r.model}.safetensors`), join(fp32Dir, `${r.model}.safetensors`));
      writeFileSync(join(run, 'wall-seconds.txt'), `${Math.round((Date.now() - t0) / 1000)}\n`);
    }
  }
  return { family, outDir, fp32Dir, cards };
}

/** The family's sample images (weights/<family>/samples/) for the demo page and the web demo's neighbours. */
function writeSamples({ family, outDir }) {
  if (!existsSync(join(outDir, 'samples'))) node('scripts/weights-samples.ts', [family, outDir]);
}

// ---- evaluation and storage --------------------------------------------------------------------------------------

/** `reptok eval` of a model folder into <dir>/eval (once: an existing report is read back). */
function evaluate(dir) {
  if (!dryRun && !['classifier', 'tokenizer'].every((m) => has(dir, m))) return null;
  const saved = join(dir, 'eval', 'report.json');
  if (!dryRun && existsSync(saved)) return JSON.parse(readFileSync(saved, 'utf8'));
  const out = reptok(['eval', '--model', dir, '-o', join(dir, 'eval'), '--json']);
  return dryRun ? null : JSON.parse(out);
}

/** Evaluates the float32 files, stores them as float16 in weights/<family>/ and evaluates those: both reports. */
function evaluateAndStore({ outDir, fp32Dir }) {
  const fp32Report = join(outDir, 'eval-float32.json');
  let full = existsSync(fp32Report) ? JSON.parse(readFileSync(fp32Report, 'utf8')) : null;
  if (!full) {
    full = evaluate(fp32Dir);
    if (full && !dryRun) writeFileSync(fp32Report, `${JSON.stringify(full, null, 2)}\n`);
  }
  const models = dryRun ? [] : readdirSync(fp32Dir).filter((f) => f.endsWith('.safetensors'));
  if (dryRun || models.some((f) => !existsSync(join(outDir, f))))
    node('scripts/weights-precision.ts', [fp32Dir, outDir, STORE]);
  return { full, stored: evaluate(outDir) };
}

// ---- model cards -----------------------------------------------------------------------------------------------------

/** The headline numbers of a report, by name. */
function headline(r) {
  if (!r) return {};
  const rec = r.reconstruction;
  const gen = r.generation;
  const it = r.interpolation;
  const t2i = r.textToImage;
  return {
    ...(rec && {
      'reconstruction PSNR (dB)': rec.psnr.mean,
      'reconstruction SSIM': rec.ssim.mean,
      'rFD (classifier features)': rec.rfd,
      'classifier agreement of reconstructions': rec.classifierAgreement,
      'classifier accuracy on the originals (ceiling)': rec.classifierAccuracyOriginals,
    }),
    ...(gen && {
      'class accuracy of samples': gen.accuracy,
      'FD(samples, test)': gen.fd,
      'FD(train, test), for scale': gen.fdTrainVsReference,
      precision: gen.precision,
      recall: gen.recall,
      'flow validation loss': gen.flowValidationLoss.mean,
    }),
    ...(it && { 'interpolation step ratio, mean': it.meanStepRatio, 'interpolation step ratio, max': it.maxStepRatio }),
    ...(t2i && { 'caption retrieval (top-5)': t2i.captionRetrieval }),
  };
}

function metricsTable({ full, stored }) {
  const [a, b] = [headline(full), headline(stored)];
  const names = Object.keys(b).length ? Object.keys(b) : Object.keys(a);
  if (names.length === 0) return [];
  const fmt = (v) => (v === undefined ? '—' : Number(v).toFixed(4));
  const p = (stored ?? full).protocol;
  return [
    '## Evaluation',
    '',
    `\`reptok eval --model weights/<family>\` (${STORE} as shipped) and the same on the float32 files, on ` +
      `${p.data} (${p.referenceSplit} split), features: ${p.featureSpace}; the whole protocol (counts, sampling ` +
      'settings, seed) is in eval/report.json, the pictures in eval/index.html.',
    '',
    `| metric | float32 | ${STORE} (shipped) |`,
    '|---|---:|---:|',
    ...names.map((n) => `| ${n} | ${fmt(a[n])} | ${fmt(b[n])} |`),
    '',
  ];
}

/** The validation metrics of a run by step (its metrics.jsonl), as a Markdown table: how far more steps would go. */
function learningCurve(run) {
  const file = join(run, 'metrics.jsonl');
  if (!existsSync(file)) return [];
  const rows = readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.includes('"validation"'))
    .map((l) => JSON.parse(l))
    .map(({ step, validation }) => ({
      step,
      ...Object.fromEntries(Object.entries(validation).filter(([k, v]) => typeof v === 'number' && !/_t\d+$/.test(k))),
    }));
  if (rows.length === 0) return [];
  const keys = Object.keys(rows.at(-1)).filter((k) => k !== 'step');
  const fmt = (v) => (v === undefined ? '' : Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(4));
  return [
    '## Learning curve',
    '',
    'Validation during training (the run folder metrics.jsonl):',
    '',
    `| step | ${keys.join(' | ')} |`,
    `|---:|${keys.map(() => '---:').join('|')}|`,
    ...rows.map((r) => `| ${r.step} | ${keys.map((k) => fmt(r[k])).join(' | ')} |`),
    '',
  ];
}

function writeCards({ family, outDir, cards }, reports) {
  for (const c of cards) {
    const file = join(outDir, `${c.model}.safetensors`);
    if (!existsSync(file)) continue;
    const info = JSON.parse(reptok(['info', file, '--json']));
    const wallFile = join(c.run, 'wall-seconds.txt');
    const wall = existsSync(wallFile) ? `${readFileSync(wallFile, 'utf8').trim()} s` : 'not recorded';
    const mb = (f) => (statSync(f).size / 1e6).toFixed(1);
    const fp32 = join(runsDir, `${family}-float32`, `${c.model}.safetensors`);
    const lines = [
      `# ${family} ${c.model}`,
      '',
      `- architecture: ${info.architecture}`,
      `- parameters: ${(info.parameters / 1e6).toFixed(2)}M, stored as ${info.dtypes.join(', ')}: ${mb(file)} MB` +
        (existsSync(fp32) ? ` (${mb(fp32)} MB in float32)` : ''),
      `- data: ${family}; preset \`${c.preset}\`, overrides ` +
        (c.sets.length ? c.sets.map((s) => `\`${s}\``).join(', ') : 'none'),
      `- steps: ${c.steps}; wall time on the 2-core machine that trained it: ${wall}`,
      '',
      'Reproduce (from the repository root; `node scripts/train-weights.mjs` runs the whole chain, then stores the',
      `files as ${STORE} with \`scripts/weights-precision.ts\`):`,
      '',
      '```',
      c.command,
      '```',
      '',
      ...metricsTable(reports),
      ...learningCurve(c.run),
    ];
    if (!dryRun) writeFileSync(join(outDir, `${c.model}.md`), lines.join('\n'));
  }
}

for (const bad of chosen.filter((c) => !(c in FAMILIES))) {
  console.error(`train-weights: unknown family '${bad}'; families: ${Object.keys(FAMILIES).join(', ')}`);
  process.exit(2);
}
const families = Object.keys(FAMILIES).filter((f) => chosen.length === 0 || chosen.includes(f));
for (const family of families) {
  const trained = trainFamily(family, FAMILIES[family]);
  writeSamples(trained);
  writeCards(trained, evaluateAndStore(trained));
}
