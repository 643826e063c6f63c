// reptok info: what the engine runs on (libtorch, threads, BLAS, oneDNN, malloc tuning, CUDA) — the first thing to
// paste in a bug report.
import { readFileSync } from 'node:fs';

import { runtimeInfo } from '../../engine/index.ts';
import type { CommandSpec } from '../args.ts';

export const spec: CommandSpec = {
  name: 'info',
  summary:
    'Print the runtime: libtorch version, threads, BLAS libraries in use, thread-wait settings, whether linear ' +
    'layers run on oneDNN and malloc is tuned, CUDA devices.',
  options: {},
};

export async function run(): Promise<void> {
  const { version } = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'));
  console.log(JSON.stringify({ reptok: version, node: process.version, ...runtimeInfo() }, null, 2));
}
