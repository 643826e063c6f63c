#!/usr/bin/env node
// Builds the native addon (build/Release/reptok.node) with node-gyp when it is missing, older than its sources, or
// built with another configuration than native/libtorch-config.cjs gives now (another LIBTORCH, libdnnl-dev or a CUDA
// libtorch installed since): each build records its configuration next to the addon (reptok.config.json), and a
// LIBTORCH given once stays in use (buildEnv).
// Runs as the package's install script (npm ci / npm install) and from the bootstrap; `--force` always rebuilds.
// Uses only Node built-ins until node-gyp itself is needed.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const { buildConfig } = createRequire(import.meta.url)('../native/libtorch-config.cjs');

const targetOf = (root) => join(root, 'build', 'Release', 'reptok.node');
const stampOf = (root) => join(root, 'build', 'Release', 'reptok.config.json');

// The configuration a build would use now; null when there is no libtorch to build against (the build says why).
export function currentConfig(env = process.env) {
  try {
    return buildConfig(env);
  } catch {
    return null;
  }
}

function newestSource(root) {
  const native = readdirSync(join(root, 'native'), { recursive: true }).map((f) => join('native', String(f)));
  const files = ['binding.gyp', ...native];
  return Math.max(...files.map((f) => statSync(join(root, f)).mtimeMs));
}

// What differs between the recorded configuration and the current one, e.g. "REPTOK_WITH_ONEDNN_MATMUL=1 added";
// empty when only the order of the flags differs.
function configChange(was, now) {
  if (now === null) return 'libtorch is not found now';
  if (was.libtorch !== now.libtorch) return `LIBTORCH=${now.libtorch ?? '(unset)'}, was ${was.libtorch ?? '(unset)'}`;
  const changes = [];
  for (const key of ['include', 'libdirs', 'libs', 'defines']) {
    const before = was[key] ?? [];
    changes.push(...now[key].filter((x) => !before.includes(x)).map((x) => `${x} added`));
    changes.push(...before.filter((x) => !now[key].includes(x)).map((x) => `${x} removed`));
  }
  return changes.join(', ');
}

function readStamp(root) {
  try {
    return JSON.parse(readFileSync(stampOf(root), 'utf8'));
  } catch {
    return null; // missing (no build since stamps exist, or a failed one) or unreadable: unknown configuration
  }
}

// The environment a build runs node-gyp (and so libtorch-config.cjs) in. LIBTORCH sticks: while it is unset, the
// LIBTORCH the addon was last built with (its stamp) stays in use, so that `LIBTORCH=<root> npm run build:addon` once
// is enough and a later `npm test` does not fall back to Debian's libtorch-dev. `--force` (`npm run build:addon`)
// without LIBTORCH builds against Debian's libtorch-dev again.
export function buildEnv({ root = repoRoot, env = process.env, force = false } = {}) {
  const recorded = force || env.LIBTORCH ? null : readStamp(root)?.libtorch;
  return recorded ? { ...env, LIBTORCH: recorded } : env;
}

// Why the addon under `root` must be (re)built, as the end of a sentence; null when it is fresh. `config` is the
// configuration a build would use now (currentConfig(buildEnv())).
export function whyAddonIsStale({ root = repoRoot, config }) {
  const target = targetOf(root);
  if (!existsSync(target)) return 'it is missing';
  if (statSync(target).mtimeMs < newestSource(root)) return 'its sources changed';
  const was = readStamp(root);
  if (was === null) return `its build configuration is not recorded (${stampOf(root)} is missing or unreadable)`;
  if (JSON.stringify(was) === JSON.stringify(config)) return null;
  const change = configChange(was, config);
  return `its build configuration changed${change ? ` (${change})` : ''}`;
}

export function buildAddon({ force = false } = {}) {
  const env = buildEnv({ force });
  const config = currentConfig(env);
  if (!force) {
    const why = whyAddonIsStale({ config });
    if (why === null) return;
    if (existsSync(targetOf(repoRoot))) console.error(`reptok: rebuilding the native addon: ${why}`);
  }
  const gyp = [join(repoRoot, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'), process.env.npm_config_node_gyp].find(
    (p) => p && existsSync(p),
  );
  if (!gyp) {
    console.error('reptok: node-gyp is missing; run `npm ci` first (or `npm test`, which bootstraps everything).');
    process.exit(1);
  }
  const against = env.LIBTORCH ? `LIBTORCH=${env.LIBTORCH}` : "Debian's libtorch-dev";
  const kept =
    env.LIBTORCH && !process.env.LIBTORCH
      ? " (kept from its last build; `npm run build:addon` without LIBTORCH returns to Debian's libtorch-dev)"
      : '';
  console.error(`reptok: building the native addon against ${against}${kept} (takes a few minutes)...`);
  const args = [gyp, 'rebuild', `--jobs=${availableParallelism()}`];
  // Build against the headers of the running Node when it ships them (Debian's nodejs, official tarballs), so no
  // header download is needed; npm passes its own nodedir setting to install scripts.
  const nodedir = process.env.npm_config_nodedir || dirname(dirname(process.execPath));
  if (existsSync(join(nodedir, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${nodedir}`);
  const r = spawnSync(process.execPath, args, { cwd: repoRoot, stdio: 'inherit', env });
  if (r.status !== 0) {
    console.error(
      'reptok: the native addon failed to build (see the compiler output above). It needs g++, make, python3 and ' +
        'libtorch (`apt-get install libtorch-dev`, or set LIBTORCH).',
    );
    process.exit(r.status ?? 1);
  }
  // After the build: a failed one leaves no record, so the next bootstrap tries again.
  if (config !== null) writeFileSync(stampOf(repoRoot), JSON.stringify(config, null, 2) + '\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) buildAddon({ force: process.argv.includes('--force') });
