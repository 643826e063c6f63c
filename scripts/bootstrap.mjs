#!/usr/bin/env node
// Makes a fresh Debian/Ubuntu checkout ready to run: system packages, npm packages, the native addon.
// Idempotent and quiet when everything is in place; `npm test`, `npm run demo` and the benchmarks call it first.
//   --peer   also install the PyTorch peer the benchmarks compare against (Debian's python3-torch)
// Only Node built-ins are used here: node_modules may not exist yet.
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readlinkSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { buildAddon, buildEnv } = await import('./build-addon.mjs');

// libtorch and the multithreaded OpenBLAS it must run with (without it libtorch falls back to the ~40x slower
// reference BLAS); oneDNN's headers for the bf16 matmul primitives (the library comes with libtorch); gloo's headers
// for c10d; Fashion-MNIST for the demo; chromium for the web demo's browser tests
// (playwright-core drives it).
const SYSTEM = [
  'libtorch-dev',
  'libdnnl-dev',
  'libgloo-dev',
  'libopenblas0-pthread',
  'dataset-fashion-mnist',
  'chromium',
];
const PEER = ['python3-torch'];

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  return r.status === 0;
}

function installed(pkg) {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes('install ok installed');
}

function ensureSystemPackages(pkgs) {
  // LIBTORCH set, or kept from the addon's last build (build-addon.mjs, buildEnv): Debian's libtorch is not needed.
  if (buildEnv().LIBTORCH) pkgs = pkgs.filter((p) => p !== 'libtorch-dev');
  if (spawnSync('dpkg-query', ['--version']).status !== 0) return; // not Debian: the addon build names what is missing
  const missing = pkgs.filter((p) => !installed(p));
  if (missing.length === 0) return;
  const isRoot = process.getuid?.() === 0;
  const apt = isRoot ? ['apt-get'] : ['sudo', '-n', 'apt-get'];
  console.error(`reptok bootstrap: installing ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () =>
    run(apt[0], [...apt.slice(1), 'install', '-y', '-q', '--no-install-recommends', ...missing], { env });
  if (!install() && !(run(apt[0], [...apt.slice(1), 'update', '-q'], { env }) && install())) {
    console.error(
      `reptok bootstrap: could not install ${missing.join(' ')}. ` +
        `Install them yourself: sudo apt-get install ${missing.join(' ')}`,
    );
    process.exit(1);
  }
}

function ensureNodeModules() {
  const modules = join(root, 'node_modules');
  const stamp = join(modules, '.package-lock.json');
  const lock = join(root, 'package-lock.json');
  if (existsSync(stamp) && (!existsSync(lock) || statSync(stamp).mtimeMs >= statSync(lock).mtimeMs)) return;
  // npm ci empties node_modules first, through a link too: a folder that several checkouts share (git worktrees
  // linked to one) would be emptied under all of them. A linked node_modules is left to the checkout that owns it.
  if (lstatSync(modules, { throwIfNoEntry: false })?.isSymbolicLink()) {
    const where = `node_modules links to ${readlinkSync(modules)}`;
    if (!existsSync(stamp)) {
      console.error(`reptok bootstrap: ${where}, which holds no npm packages: run npm ci there, or remove the link.`);
      process.exit(1);
    }
    console.error(`reptok bootstrap: ${where}, older than package-lock.json; not running npm ci through the link.`);
    return;
  }
  console.error('reptok bootstrap: installing npm packages (npm ci)');
  if (!run('npm', [existsSync(lock) ? 'ci' : 'install', '--no-audit', '--no-fund'])) process.exit(1);
}

ensureSystemPackages(process.argv.includes('--peer') ? [...SYSTEM, ...PEER] : SYSTEM);
ensureNodeModules();
buildAddon();
