#!/usr/bin/env node
// Trains the models that ship in weights/ with reptok's own CLI, evaluates them with `reptok eval`, and writes a
// model card beside each file. Long (hours on 2 cores): every stage resumes where it stopped, and a stage whose
// exported file exists is skipped, so the script can be run again after an interruption or across sessions.
//
//   node scripts/train-weights.mjs                 everything (fashion-mnist, then emoji)
//   node scripts/train-weights.mjs fashion-mnist   one family
//   node scripts/train-weights.mjs --dry-run       print the commands only
//   node scripts/train-weights.mjs --steps-scale 0.01 --runs /tmp/r --weights /tmp/w   a quick rehearsal
//
// Run folders go to runs/weights/<family>-<stage>/ (kept for resuming), the exported files to weights/<family>/.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { FAMILIES } from './weights-recipes.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
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

const reptok = (cmdArgs) => {
  console.log(`$ reptok ${cmdArgs.join(' ')}`);
  if (dryRun) return { status: 0, stdout: '' };
  const r = spawnSync(process.execPath, [join(root, 'bin', 'reptok.mjs'), ...cmdArgs], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });
  process.stdout.write(r.stdout ?? '');
  if (r.status !== 0) throw new Error(`reptok ${cmdArgs[0]} failed (exit ${r.status}); fix it and run again`);
  return r;
};

const hasCheckpoint = (dir) => existsSync(dir) && readdirSync(dir).some((f) => /^step-\d+\.safetensors$/.test(f));

function trainFamily(family, recipes) {
  const outDir = join(weightsDir, family);
  if (!dryRun) mkdirSync(outDir, { recursive: true });
  const fileOf = (model) => join(outDir, `${model}.safetensors`);
  const cards = [];
  for (const r of recipes) {
    const target = fileOf(r.model);
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
    const cmd = command(run, fileOf);
    // the card shows the command with the default folders, as run from the repository's root
    const shown = command(`runs/weights/${family}-${r.model}`, (m) => `weights/${family}/${m}.safetensors`);
    cards.push({ ...r, steps, command: `reptok ${shown.join(' ')}`, run });
    if (existsSync(target)) {
      console.log(`${family}/${r.model}: ${target} exists, skipped`);
      continue;
    }
    const t0 = Date.now();
    reptok(hasCheckpoint(run) ? [...cmd, '--resume'] : [...cmd, '--force']);
    if (!dryRun) {
      copyFileSync(join(run, `${r.model}.safetensors`), target);
      writeFileSync(join(run, 'wall-seconds.txt'), `${Math.round((Date.now() - t0) / 1000)}\n`);
    }
  }
  return { outDir, cards, fileOf };
}

/** The family's sample images (weights/<family>/samples/) for the demo page and the web demo's neighbours. */
function writeSamples(family, { outDir }) {
  if (existsSync(join(outDir, 'samples'))) return;
  console.log(`$ tsx scripts/weights-samples.ts ${family} ${outDir}`);
  if (dryRun) return;
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', join(root, 'scripts', 'weights-samples.ts'), family, outDir],
    {
      cwd: root,
      stdio: 'inherit',
    },
  );
  if (r.status !== 0) throw new Error(`weights-samples.ts failed (exit ${r.status})`);
}

function evaluateFamily({ outDir, fileOf }) {
  if (!dryRun && !['classifier', 'tokenizer'].every((m) => existsSync(fileOf(m)))) return null;
  // evaluated already (delete eval/ to evaluate again)
  const saved = join(outDir, 'eval', 'report.json');
  if (!dryRun && existsSync(saved)) return JSON.parse(readFileSync(saved, 'utf8'));
  const r = reptok([
    'eval',
    '--model',
    outDir,
    '--classifier',
    fileOf('classifier'),
    '-o',
    join(outDir, 'eval'),
    '--json',
  ]);
  return dryRun ? null : JSON.parse(r.stdout);
}

function writeCards(family, { outDir, cards, fileOf }, report) {
  for (const c of cards) {
    const file = fileOf(c.model);
    if (!existsSync(file)) continue;
    const info = JSON.parse(reptok(['info', file, '--json']).stdout);
    const wall = existsSync(join(c.run, 'wall-seconds.txt'))
      ? readFileSync(join(c.run, 'wall-seconds.txt'), 'utf8')
      : '?';
    const lines = [
      `# ${family} ${c.model}`,
      '',
      `- architecture: ${info.architecture}`,
      `- parameters: ${(info.parameters / 1e6).toFixed(2)}M (${info.dtypes.join(', ')}), file ${(statSync(file).size / 1e6).toFixed(1)} MB`,
      `- data: ${family}; preset \`${c.preset}\`, overrides ${c.sets.length ? c.sets.map((s) => `\`${s}\``).join(', ') : 'none'}`,
      `- steps: ${c.steps}; wall time on the machine that trained it: ${String(wall).trim()} s`,
      '',
      ...learningCurve(c.run),
      'Reproduce:',
      '',
      '```',
      c.command,
      '```',
    ];
    if (report)
      lines.push(
        '',
        'Evaluation (`reptok eval`, protocol in eval/report.json):',
        '',
        '```json',
        JSON.stringify(report, null, 2),
        '```',
      );
    if (!dryRun) writeFileSync(join(outDir, `${c.model}.md`), lines.join('\n') + '\n');
  }
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
    'Learning curve (validation during training):',
    '',
    `| step | ${keys.join(' | ')} |`,
    `|---:|${keys.map(() => '---:').join('|')}|`,
    ...rows.map((r) => `| ${r.step} | ${keys.map((k) => fmt(r[k])).join(' | ')} |`),
    '',
  ];
}

for (const bad of chosen.filter((c) => !(c in FAMILIES))) {
  console.error(`train-weights: unknown family '${bad}'; families: ${Object.keys(FAMILIES).join(', ')}`);
  process.exit(2);
}
const families = Object.keys(FAMILIES).filter((f) => chosen.length === 0 || chosen.includes(f));
for (const family of families) {
  const trained = trainFamily(family, FAMILIES[family]);
  writeSamples(family, trained);
  writeCards(family, trained, evaluateFamily(trained));
}
