// Random numbers. `manualSeed` seeds the global generators (CPU and CUDA); a `Generator` is an independent stream
// (one for data order, one for augmentation, one for noise...) whose state can be saved and restored exactly.
// Both are libtorch's own generators, so the same seed gives the same numbers as PyTorch.
import { native, type Handle } from './native.ts';
import { Tensor, type BatchShard } from './tensor.ts';
import type { Device } from './device.ts';

/** Seeds the global generators of every device. */
export function manualSeed(seed: number | bigint): void {
  native.manualSeed(seed);
}

export class Generator {
  readonly handle: Handle;
  readonly device: Device;
  /** Set on a data-parallel rank's training generator: batch-major draws are split across ranks (creation.ts). */
  batchShard: BatchShard | null = null;

  /** A new generator; the default seed is PyTorch's (67280421310721). */
  constructor(opts: { seed?: number | bigint; device?: Device } = {}, /** @internal */ handle?: Handle) {
    this.device = opts.device ?? 'cpu';
    this.handle = handle ?? native.newGenerator(this.device, opts.seed ?? 67280421310721);
  }

  /** The process-wide default CPU generator (the one `manualSeed` seeds and unseeded ops draw from). */
  static default(): Generator {
    return new Generator({}, native.defaultGenerator());
  }

  manualSeed(seed: number | bigint): this {
    native.generatorSeed(this.handle, seed);
    return this;
  }

  /** The full generator state as a uint8 tensor (for checkpoints). */
  getState(): Tensor {
    return new Tensor(native.generatorGetState(this.handle));
  }

  setState(state: Tensor): this {
    native.generatorSetState(this.handle, state.handle);
    return this;
  }
}
