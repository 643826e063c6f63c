// Devices: 'cpu', 'cuda' or 'cuda:N'.
import { native } from './native.ts';

export type Device = 'cpu' | 'cuda' | `cuda:${number}` | (string & {});

/**
 * What is wrong with running on `device` in this process, or null: not one of 'cpu', 'cuda', 'cuda:N', a CUDA
 * device on a libtorch without CUDA, or a CUDA index past the devices there are. The pipeline and the CLI's
 * --device check it before loading anything, so the user reads what to do instead of libtorch's "not linked with
 * support for cuda devices" (or its list of device types this build cannot run).
 */
export function deviceProblem(device: Device): string | null {
  if (device === 'cpu') return null;
  const m = /^cuda(?::(\d+))?$/.exec(device);
  if (!m) return "not a device here: use 'cpu', 'cuda' or 'cuda:N'";
  const count = native.cudaDeviceCount();
  if (count === 0)
    return (
      "this libtorch has no CUDA (Debian's libtorch-dev is CPU-only); " +
      'build against a CUDA libtorch with LIBTORCH=<root> (see README)'
    );
  if (m[1] !== undefined && Number(m[1]) >= count)
    return `this machine has ${count} CUDA device${count === 1 ? '' : 's'} (cuda:0${count > 1 ? `…cuda:${count - 1}` : ''})`;
  return null;
}

export const cuda = {
  /** Number of CUDA devices libtorch can use (0 on CPU-only builds). */
  deviceCount: (): number => native.cudaDeviceCount(),
  isAvailable: (): boolean => native.cudaDeviceCount() > 0,
  /** Waits for all queued work on a CUDA device (for timing). */
  synchronize: (index?: number): void => native.cudaSynchronize(index),
};
