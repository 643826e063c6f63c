// Loads the native addon (build/Release/reptok.node) and sets up the runtime around libtorch.
//
// Three settings must be in the environment *before* libtorch is loaded, because its libraries read them once:
// - OMP_WAIT_POLICY=PASSIVE: libgomp's workers otherwise spin after every parallel region and fight OpenBLAS's
//   own threads for the cores (measured: a tokenizer training step 2.3 s -> 0.88 s on 2 cores).
// - OPENBLAS_THREAD_TIMEOUT=16: the other half of that fight. OpenBLAS's workers spin (yielding) for 2^28 cycles,
//   a tenth of a second, after every sgemm, so the element-wise and attention kernels between two matmuls share
//   the cores with spinning threads; 2^16 cycles (~25 µs) keeps them hot across back-to-back matmuls and asleep
//   otherwise (measured in alternating runs on 2 cores: tokenizer training step and decoder evaluation 10-15%
//   faster; PyTorch gains 7-8% from the same setting).
// - OPENBLAS_CORETYPE=SkylakeX on AVX-512 CPUs: OpenBLAS 0.3.21 (Debian 12) does not recognise recent Xeons and
//   falls back to its generic "Prescott" kernels, 5-7x slower for sgemm (measured here: 35 vs 180-250 GFLOP/s).
//   The SkylakeX kernels need only AVX-512 F/CD/BW/DQ/VL, which every such CPU has.
// Each is left alone when the user set it (bench/peer.ts starts PyTorch with this same environment). After loading
// we check which BLAS the dynamic linker picked and warn loudly about the reference BLAS.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/** An opaque native handle (a tensor or a generator). */
export interface Handle {
  readonly __reptokHandle: never;
}

export interface Native {
  // dispatch
  findOp(name: string, overload: string): number;
  call(op: number, ...args: unknown[]): unknown;
  callVoid(op: number, ...args: unknown[]): void;
  opSchema(op: number): string;
  // tensors
  dispose(h: Handle): void;
  isDisposed(h: Handle): boolean;
  shape(h: Handle): number[];
  strides(h: Handle): number[];
  dtype(h: Handle): number;
  device(h: Handle): string;
  requiresGrad(h: Handle): boolean;
  isContiguous(h: Handle): boolean;
  isLeaf(h: Handle): boolean;
  gradFnName(h: Handle): string | null;
  describe(h: unknown): string;
  sameStorage(a: Handle, b: Handle): boolean;
  fromBytes(bytes: ArrayBufferView, dtype: number, shape: number[], device?: string): Handle;
  toBytes(h: Handle): Buffer;
  item(h: Handle): number | boolean;
  readInto(h: Handle, fd: number, position: number): void;
  writeFrom(h: Handle, fd: number, position: number): number;
  liveTensors(): { count: number; bytes: number };
  // autograd
  backward(tensors: Handle[], grads: (Handle | null)[] | null, retainGraph: boolean, createGraph: boolean): void;
  autogradGrad(
    outputs: Handle[],
    inputs: Handle[],
    gradOutputs: (Handle | null)[] | null,
    retainGraph: boolean,
    createGraph: boolean,
    allowUnused: boolean,
  ): (Handle | null)[];
  getGrad(h: Handle): Handle | null;
  hasGrad(h: Handle): boolean;
  setGrad(h: Handle, g: Handle | null): void;
  setRequiresGrad(h: Handle, flag: boolean): void;
  isGradEnabled(): boolean;
  setGradEnabled(flag: boolean): void;
  setAutocastCpu(enabled: boolean, dtype?: number): boolean;
  setAutocastCuda(enabled: boolean, dtype?: number): boolean;
  // random
  manualSeed(seed: number | bigint): void;
  newGenerator(device: string, seed: number | bigint): Handle;
  generatorSeed(g: Handle, seed: number | bigint): void;
  generatorGetState(g: Handle): Handle;
  generatorSetState(g: Handle, state: Handle): void;
  defaultGenerator(): Handle;
  // optim
  adamwStep(params: Handle[], expAvg: Handle[], expAvgSq: Handle[], maxExpAvgSq: Handle[] | null, opts: object): void;
  sgdStep(params: Handle[], buffers: (Handle | null)[], opts: object): (Handle | null)[];
  clipGradNorm(params: Handle[], maxNorm: number, normType: number): number;
  emaUpdate(ema: Handle[], src: Handle[], decay: number): void;
  // runtime
  setNumThreads(n: number): void;
  getNumThreads(): number;
  blasLibraries(): string[];
  blasCore(): string | null;
  version(): string;
  cudaDeviceCount(): number;
  cudaSynchronize(index?: number): void;
  parallelInfo(): string;
  mallocTuning(): boolean;
  onednnGemm(): { float32: boolean; bfloat16: boolean; isa: number; isaName: string | null };
  onednnMatmul(dtype: 'bfloat16' | 'float32'): string | null;
  packForInference(weights: Handle[], enable: boolean): number;
  weightCopies(): Record<'bf16' | 'packed', { count: number; bytes: number }>;
  dropWeightCopies(weights: Handle[]): void;
  attentionBf16Dot(enable?: boolean): boolean;
  // distributed (c10d)
  initProcessGroup(o: {
    backend: 'gloo' | 'nccl';
    store: 'tcp' | 'file';
    rank: number;
    worldSize: number;
    timeoutMs: number;
    host?: string;
    port?: number;
    isServer?: boolean;
    path?: string;
    glooHostname?: string;
    glooThreads?: number;
  }): Handle;
  destroyProcessGroup(g: Handle): void;
  groupInfo(g: Handle): { rank: number; worldSize: number; backend: string; timeoutMs: number };
  allReduce(g: Handle, t: Handle, op: string, timeoutMs?: number): void;
  broadcast(g: Handle, t: Handle, root: number, timeoutMs?: number): void;
  allGather(g: Handle, t: Handle, timeoutMs?: number): Handle[];
  barrier(g: Handle, timeoutMs?: number): void;
  createReducer(g: Handle, params: Handle[], bucketBytes: number): Handle;
  reducerInfo(r: Handle): { bucketBytes: number[] };
  reducerPrepare(r: Handle, sync: boolean): void;
  reducerFinalize(r: Handle, timeoutMs: number): { waitMs: number; unused: number };
  // profiler
  profilerStart(withShapes?: boolean): void;
  profilerStop(): OpProfile[];
}

export interface OpProfile {
  name: string;
  calls: number;
  totalUs: number;
  selfUs: number;
}

function hasAvx512(): boolean {
  try {
    const flags = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.split(' ') ?? [];
    return ['avx512f', 'avx512cd', 'avx512bw', 'avx512dq', 'avx512vl'].every((f) => flags.includes(f));
  } catch {
    return false; // not Linux: leave OpenBLAS's own detection alone
  }
}

function load(): Native {
  if (process.env.OMP_WAIT_POLICY === undefined) process.env.OMP_WAIT_POLICY = 'PASSIVE';
  if (process.env.OPENBLAS_CORETYPE === undefined && hasAvx512()) process.env.OPENBLAS_CORETYPE = 'SkylakeX';
  if (process.env.OPENBLAS_THREAD_TIMEOUT === undefined) process.env.OPENBLAS_THREAD_TIMEOUT = '16';
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const file = join(root, 'build', 'Release', 'reptok.node');
  if (!existsSync(file)) {
    throw new Error(
      `reptok: the native addon is not built (${file} is missing). Run \`npm test\` once (it bootstraps libtorch and ` +
        `builds the addon), or \`npm run build:addon\`.`,
    );
  }
  const addon = createRequire(import.meta.url)(file) as Native;
  checkBlas(addon);
  if (process.env.OMP_NUM_THREADS === undefined) addon.setNumThreads(availableParallelism());
  return addon;
}

// The libblas.so.3 that Debian's alternatives point to decides libtorch's GEMM speed; the reference BLAS
// (/usr/lib/<arch>/blas/libblas.so.3) makes everything ~40x slower without any error.
function checkBlas(addon: Native): void {
  const libs = addon.blasLibraries();
  const fast = libs.some((p) => /openblas|libmkl|blis/.test(p));
  const reference = libs.some((p) => /\/blas\/libblas\.so/.test(p));
  if (addon.blasCore() === 'Prescott') {
    process.emitWarning(
      "reptok: OpenBLAS runs its generic 'Prescott' kernels on this CPU (it does not recognise the model), " +
        '3-7x slower than needed. Set OPENBLAS_CORETYPE to your CPU family (Haswell for AVX2, SkylakeX for AVX-512) ' +
        'before starting.',
      { code: 'REPTOK_SLOW_BLAS' },
    );
  }
  if (reference || !fast) {
    const line = '!'.repeat(100);
    process.emitWarning(
      `\n${line}\nreptok: libtorch is running on the reference BLAS (${libs.join(', ') || 'none found'}), ` +
        'which is ~40x slower.\n' +
        'Install the multithreaded OpenBLAS: `apt-get install libopenblas0-pthread` (or select it with\n' +
        '`update-alternatives --config libblas.so.3-$(uname -m)-linux-gnu`).\n' +
        line,
      { code: 'REPTOK_SLOW_BLAS' },
    );
  }
}

export const native: Native = load();
