#!/usr/bin/env node
// Builds the native addon (build/Release/reptok.node) with node-gyp when it is missing or older than its sources.
// Runs as the package's install script (npm ci / npm install) and from the bootstrap; `--force` always rebuilds.
// Uses only Node built-ins until node-gyp itself is needed.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const target = join(root, 'build', 'Release', 'reptok.node');

function newestSource() {
  const native = readdirSync(join(root, 'native'), { recursive: true }).map((f) => join('native', String(f)));
  const files = ['binding.gyp', ...native];
  return Math.max(...files.map((f) => statSync(join(root, f)).mtimeMs));
}

export function addonIsFresh() {
  return existsSync(target) && statSync(target).mtimeMs >= newestSource();
}

export function buildAddon({ force = false } = {}) {
  if (!force && addonIsFresh()) return;
  const gyp = [join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'), process.env.npm_config_node_gyp].find(
    (p) => p && existsSync(p),
  );
  if (!gyp) {
    console.error('reptok: node-gyp is missing; run `npm ci` first (or `npm test`, which bootstraps everything).');
    process.exit(1);
  }
  console.error(
    `reptok: building the native addon against ` +
      `${process.env.LIBTORCH ? `LIBTORCH=${process.env.LIBTORCH}` : "Debian's libtorch-dev"} (takes a few minutes)...`,
  );
  const args = [gyp, 'rebuild', `--jobs=${availableParallelism()}`];
  // Build against the headers of the running Node when it ships them (Debian's nodejs, official tarballs), so no
  // header download is needed; npm passes its own nodedir setting to install scripts.
  const nodedir = process.env.npm_config_nodedir || dirname(dirname(process.execPath));
  if (existsSync(join(nodedir, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${nodedir}`);
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(
      'reptok: the native addon failed to build (see the compiler output above). It needs g++, make, python3 and ' +
        'libtorch (`apt-get install libtorch-dev`, or set LIBTORCH).',
    );
    process.exit(r.status ?? 1);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) buildAddon({ force: process.argv.includes('--force') });
