#!/usr/bin/env node
// Locates libtorch for binding.gyp. Prints one gyp list per call:
//   --include  include directories
//   --libdirs  library directories (also baked in as rpath, so LIBTORCH builds run without LD_LIBRARY_PATH)
//   --libs     libraries to link
//   --defines  preprocessor definitions (the C++ ABI libtorch was built with, CUDA availability)
//
// Default: Debian's `libtorch-dev` (headers in /usr/include, libraries in the multiarch dir).
// Override: LIBTORCH=<root with include/ and lib/> (the official LibTorch archive, or the `torch/` folder of a
// pip installation, CUDA builds included).
//
// Also a module: scripts/build-addon.mjs calls buildConfig() to record what the addon was built with and to rebuild
// it when that changes (libdnnl-dev installed later, another LIBTORCH). So that asking never ends the asking
// process, buildConfig() throws where the command line prints the message and exits.
'use strict';
const fs = require('fs');
const path = require('path');

function locate(env) {
  const root = env.LIBTORCH;
  if (root) {
    const inc = path.join(root, 'include');
    const lib = path.join(root, 'lib');
    if (!fs.existsSync(path.join(inc, 'ATen', 'ATen.h')))
      throw new Error(
        `LIBTORCH=${root}: no include/ATen/ATen.h there. Point LIBTORCH at the folder that holds include/ and lib/ ` +
          '(e.g. libtorch/ of the official archive, or site-packages/torch).',
      );
    if (!fs.existsSync(lib)) throw new Error(`LIBTORCH=${root}: no lib/ folder there.`);
    const cmake = path.join(root, 'share', 'cmake', 'Torch', 'TorchConfig.cmake');
    return { inc, lib, cmake, rpath: true };
  }
  const inc = '/usr/include';
  const multiarch = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib'].find((d) =>
    fs.existsSync(path.join(d, 'libtorch.so')),
  );
  if (!fs.existsSync(path.join(inc, 'ATen', 'ATen.h')) || !multiarch) {
    throw new Error(
      'libtorch not found. Install it with `apt-get install libtorch-dev libopenblas0-pthread` (or run `npm test`, ' +
        'which bootstraps it), or set LIBTORCH=<root with include/ and lib/> to use another libtorch.',
    );
  }
  return { inc, lib: multiarch, cmake: path.join(multiarch, 'cmake', 'Torch', 'TorchConfig.cmake'), rpath: false };
}

// libtorch must be compiled against with the same libstdc++ ABI it was built with; TorchConfig.cmake records it.
function cxx11Abi(cmake) {
  try {
    const m = /_GLIBCXX_USE_CXX11_ABI=(\d)/.exec(fs.readFileSync(cmake, 'utf8'));
    if (m) return m[1];
  } catch {}
  return '1';
}

// The four gyp lists for the libtorch that `env` selects, and that LIBTORCH value (null: Debian's libtorch-dev).
// Throws an Error with a message for the user when there is no libtorch to build against.
function buildConfig(env = process.env) {
  const t = locate(env);
  const hasCuda = fs.existsSync(path.join(t.lib, 'libtorch_cuda.so'));
  // c10d's NCCL process group: in CUDA builds of libtorch that ship its header (Debian's libtorch-dev is CPU-only).
  const hasNccl =
    hasCuda && fs.existsSync(path.join(t.inc, 'torch', 'csrc', 'distributed', 'c10d', 'ProcessGroupNCCL.hpp'));
  // oneDNN's headers (Debian's libdnnl-dev, the same 2.x as the libdnnl.so.2 libtorch-dev links): bf16 linear layers
  // then run as matmul primitives over packed weights (native/kernels/onednn.cc). Official LibTorch archives link
  // oneDNN statically with hidden symbols, so there is nothing to call.
  const hasOnednnMatmul = !t.rpath && fs.existsSync(path.join(t.inc, 'oneapi', 'dnnl', 'dnnl.h'));
  return {
    libtorch: env.LIBTORCH || null,
    include: [t.inc, path.join(t.inc, 'torch', 'csrc', 'api', 'include')],
    libdirs: [`-L${t.lib}`].concat(t.rpath ? [`-Wl,-rpath,${t.lib}`] : []),
    // --no-as-needed keeps libtorch_cuda linked although no symbol of it is referenced: loading it registers the CUDA
    // kernels.
    libs: ['-Wl,--no-as-needed', '-ltorch', '-ltorch_cpu', '-lc10']
      .concat(hasCuda ? ['-ltorch_cuda', '-lc10_cuda'] : [])
      .concat(['-Wl,--as-needed']),
    defines: [`_GLIBCXX_USE_CXX11_ABI=${cxx11Abi(t.cmake)}`]
      .concat(hasCuda ? ['REPTOK_WITH_CUDA=1'] : [])
      .concat(hasNccl ? ['REPTOK_WITH_NCCL=1'] : [])
      .concat(hasOnednnMatmul ? ['REPTOK_WITH_ONEDNN_MATMUL=1'] : []),
  };
}

module.exports = { buildConfig };

if (require.main === module) {
  const fail = (msg) => {
    process.stderr.write(`\nreptok: ${msg}\n\n`);
    process.exit(1);
  };
  const lists = { '--include': 'include', '--libdirs': 'libdirs', '--libs': 'libs', '--defines': 'defines' };
  const arg = process.argv[2];
  if (!Object.hasOwn(lists, arg)) fail(`libtorch-config: unknown option ${arg}`);
  let config;
  try {
    config = buildConfig();
  } catch (e) {
    fail(e.message);
  }
  process.stdout.write(config[lists[arg]].join(' '));
}
