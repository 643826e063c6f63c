// Devices: 'cpu', 'cuda' or 'cuda:N' (any device string libtorch understands).
import { native } from './native.ts';

export type Device = 'cpu' | 'cuda' | `cuda:${number}` | (string & {});

export const cuda = {
  /** Number of CUDA devices libtorch can use (0 on CPU-only builds). */
  deviceCount: (): number => native.cudaDeviceCount(),
  isAvailable: (): boolean => native.cudaDeviceCount() > 0,
  /** Waits for all queued work on a CUDA device (for timing). */
  synchronize: (index?: number): void => native.cudaSynchronize(index),
};
