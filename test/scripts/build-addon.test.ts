// The addon counts as fresh only while its sources are older than it AND the configuration it was built with (the
// stamp build/Release/reptok.config.json) is the one native/libtorch-config.cjs gives now; otherwise the bootstrap
// rebuilds it, e.g. after `apt-get install libdnnl-dev` or with another LIBTORCH. Nothing is built here: a fake
// checkout in a temporary folder and a fake LIBTORCH tree stand in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { buildEnv, currentConfig, whyAddonIsStale, type BuildConfig } from '../../scripts/build-addon.mjs';

// Not test/helpers.ts's ROOT: that module loads the engine, and these tests need no addon.
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

// Debian's libtorch-dev, built before libdnnl-dev was installed, and the same after.
const WITHOUT_DNNL: BuildConfig = {
  libtorch: null,
  include: ['/usr/include', '/usr/include/torch/csrc/api/include'],
  libdirs: ['-L/usr/lib/x86_64-linux-gnu'],
  libs: ['-Wl,--no-as-needed', '-ltorch', '-ltorch_cpu', '-lc10', '-Wl,--as-needed'],
  defines: ['_GLIBCXX_USE_CXX11_ABI=1'],
};
const WITH_DNNL: BuildConfig = { ...WITHOUT_DNNL, defines: [...WITHOUT_DNNL.defines, 'REPTOK_WITH_ONEDNN_MATMUL=1'] };

const tmp = mkdtempSync(join(tmpdir(), 'reptok-build-addon-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

function touch(file: string, text: string, mtimeS: number): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
  utimesSync(file, mtimeS, mtimeS);
}

// A checkout whose sources date from t=1000 s and whose addon from `addonAt`, with `stamp` recorded (none: null).
function checkout(name: string, { addonAt = 2000, stamp }: { addonAt?: number; stamp: BuildConfig | null }): string {
  const root = join(tmp, name);
  touch(join(root, 'binding.gyp'), '{}', 1000);
  touch(join(root, 'native', 'kernels', 'k.cc'), '', 1000);
  for (const dir of ['native', 'native/kernels']) utimesSync(join(root, dir), 1000, 1000); // folders count as sources
  touch(join(root, 'build', 'Release', 'reptok.node'), '', addonAt);
  if (stamp) touch(join(root, 'build', 'Release', 'reptok.config.json'), JSON.stringify(stamp), addonAt);
  return root;
}

test('an addon newer than its sources, built with the current configuration, is fresh', () => {
  assert.equal(whyAddonIsStale({ root: checkout('fresh', { stamp: WITH_DNNL }), config: WITH_DNNL }), null);
});

test('an addon built before libdnnl-dev was installed is rebuilt, and the reason names the new define', () => {
  const why = whyAddonIsStale({ root: checkout('no-dnnl', { stamp: WITHOUT_DNNL }), config: WITH_DNNL });
  assert.equal(why, 'its build configuration changed (REPTOK_WITH_ONEDNN_MATMUL=1 added)');
});

test('an addon built against another LIBTORCH is rebuilt, and the reason names both', () => {
  const stamp = { ...WITHOUT_DNNL, libtorch: '/opt/libtorch' };
  const why = whyAddonIsStale({ root: checkout('libtorch', { stamp }), config: WITH_DNNL });
  assert.equal(why, 'its build configuration changed (LIBTORCH=(unset), was /opt/libtorch)');
});

test('an addon without a recorded configuration (built before stamps, or by node-gyp directly) is rebuilt', () => {
  const why = whyAddonIsStale({ root: checkout('no-stamp', { stamp: null }), config: WITH_DNNL });
  assert.match(why ?? '', /^its build configuration is not recorded \(.*reptok\.config\.json is missing/);
});

test('an addon is rebuilt when libtorch is no longer found (the build then says what is missing)', () => {
  const why = whyAddonIsStale({ root: checkout('no-libtorch', { stamp: WITH_DNNL }), config: null });
  assert.equal(why, 'its build configuration changed (libtorch is not found now)');
});

test('a missing addon, or one older than its sources, is rebuilt whatever its stamp', () => {
  const missing = checkout('missing', { stamp: WITH_DNNL });
  rmSync(join(missing, 'build', 'Release', 'reptok.node'));
  assert.equal(whyAddonIsStale({ root: missing, config: WITH_DNNL }), 'it is missing');
  const old = checkout('old', { addonAt: 500, stamp: WITH_DNNL });
  assert.equal(whyAddonIsStale({ root: old, config: WITH_DNNL }), 'its sources changed');
});

test('a LIBTORCH given once sticks: unset, the one of the last build is used; set or --force, the given one', () => {
  const root = checkout('sticky', { stamp: { ...WITH_DNNL, libtorch: '/opt/libtorch' } });
  assert.equal(buildEnv({ root, env: {} }).LIBTORCH, '/opt/libtorch');
  assert.equal(buildEnv({ root, env: { LIBTORCH: '/opt/other' } }).LIBTORCH, '/opt/other');
  assert.equal(buildEnv({ root, env: {}, force: true }).LIBTORCH, undefined);
  assert.equal(buildEnv({ root: checkout('debian', { stamp: WITH_DNNL }), env: {} }).LIBTORCH, undefined);
});

// ---------------------------------------------------------------------------------------------------------------
// libtorch-config.cjs: the configuration as a module (no exit) and on the command line (for binding.gyp)
// ---------------------------------------------------------------------------------------------------------------

// A CUDA libtorch as the official archive lays it out (headers and libraries are empty files: only names matter).
function fakeLibtorch(): string {
  const root = join(tmp, 'libtorch-cuda');
  touch(join(root, 'include', 'ATen', 'ATen.h'), '', 1000);
  touch(join(root, 'lib', 'libtorch_cuda.so'), '', 1000);
  touch(join(root, 'share', 'cmake', 'Torch', 'TorchConfig.cmake'), 'set(X "-D_GLIBCXX_USE_CXX11_ABI=0")', 1000);
  return root;
}

test('the configuration of a CUDA LIBTORCH: its ABI, CUDA define and libraries, its lib/ as rpath', () => {
  const root = fakeLibtorch();
  const c = currentConfig({ LIBTORCH: root });
  assert.ok(c);
  assert.equal(c.libtorch, root);
  assert.deepEqual(c.defines, ['_GLIBCXX_USE_CXX11_ABI=0', 'REPTOK_WITH_CUDA=1']);
  assert.deepEqual(c.libdirs, [`-L${join(root, 'lib')}`, `-Wl,-rpath,${join(root, 'lib')}`]);
  assert.ok(c.libs.includes('-ltorch_cuda'));
});

test('asking for the configuration of a LIBTORCH without libtorch returns null instead of ending the process', () => {
  assert.equal(currentConfig({ LIBTORCH: join(tmp, 'nothing-here') }), null);
});

test('libtorch-config.cjs prints gyp lists for binding.gyp; exits 1 naming the folder when LIBTORCH is wrong', () => {
  const cli = (arg: string, LIBTORCH: string) =>
    spawnSync(process.execPath, [join(ROOT, 'native', 'libtorch-config.cjs'), arg], {
      env: { ...process.env, LIBTORCH },
      encoding: 'utf8',
    });
  const root = fakeLibtorch();
  const ok = cli('--defines', root);
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(ok.stdout, '_GLIBCXX_USE_CXX11_ABI=0 REPTOK_WITH_CUDA=1');
  const bad = cli('--include', join(tmp, 'nothing-here'));
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /reptok: LIBTORCH=.*nothing-here: no include\/ATen\/ATen\.h there/);
});
