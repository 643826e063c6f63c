// reptok info: what the engine runs on (libtorch, threads, BLAS, CUDA) — the first thing to paste in a bug report.
import { runtimeInfo } from '../../engine/index.ts';
import type { CommandSpec } from '../args.ts';

export const spec: CommandSpec = {
  name: 'info',
  summary: 'Print the runtime: libtorch version, threads, BLAS libraries in use, CUDA devices.',
  options: {},
};

export async function run(): Promise<void> {
  console.log(JSON.stringify({ reptok: process.env.npm_package_version, node: process.version, ...runtimeInfo() }, null, 2));
}
