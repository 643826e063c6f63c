// --device: where a command's models run ('cpu', 'cuda', 'cuda:N'), checked before anything is loaded, so a
// libtorch without CUDA gives a message that says what to do instead of libtorch's own error.
import { deviceProblem, type Device } from '../engine/index.ts';
import { UsageError } from './args.ts';

/** The device a --device flag names; a bare 'cuda' means this worker's LOCAL_RANK (device 0 without one). */
export function deviceFor(flag: string, localRank: number | undefined, command?: string): Device {
  if (flag === 'cpu') return 'cpu';
  const device: Device = flag === 'cuda' ? `cuda:${localRank ?? 0}` : flag;
  const problem = deviceProblem(flag) ?? deviceProblem(device);
  if (problem) throw new UsageError(`--device ${flag}: ${problem}`, command);
  return device;
}
