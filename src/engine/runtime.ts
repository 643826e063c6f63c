// Process-wide runtime settings of the engine.
import { availableParallelism } from 'node:os';

import { native } from './native.ts';

/**
 * Threads libtorch uses for intra-op parallelism (default: the available cores, or OMP_NUM_THREADS). At most the
 * available cores: more only oversubscribes them (a million threads would hang the machine creating them).
 */
export function setNumThreads(n: number): void {
  const cores = availableParallelism();
  if (!(Number.isSafeInteger(n) && n >= 1 && n <= cores))
    throw new RangeError(`setNumThreads: the thread count must be an integer from 1 to ${cores} (the cores), got ${n}`);
  native.setNumThreads(n);
}
export const getNumThreads = (): number => native.getNumThreads();

/**
 * Facts for logs and bug reports: libtorch version, threads, BLAS libraries in use, CUDA devices, whether the
 * addon set glibc's malloc thresholds (native/runtime.cc: freed activations stay in the heap for reuse), and
 * whether float32 linear layers run on oneDNN's sgemm (native/kernels/linear.cc) rather than the BLAS.
 */
export function runtimeInfo(): {
  libtorch: string;
  threads: number;
  blas: string[];
  blasCore: string | null;
  cudaDevices: number;
  ompWaitPolicy?: string;
  openblasThreadTimeout?: string;
  mallocTuning: boolean;
  onednnGemm: boolean;
  /**
   * oneDNN's implementation of the float32 matmul primitives that weights packed for inference run on
   * (`packForInference`, e.g. 'brg:avx512_core'); null without them (such weights then run on sgemm).
   */
  float32Matmul: string | null;
  /** oneDNN's GEMMs in bfloat16 (float32 accumulation), and whether the CPU runs them natively. */
  bf16: Bf16Support;
  /** What runs bfloat16 attention's products: AVX512-BF16's vdpbf16ps, or float32 on widened operands. */
  attentionBf16: 'avx512_bf16' | 'float32';
} {
  return {
    libtorch: native.version(),
    threads: native.getNumThreads(),
    blas: native.blasLibraries(),
    blasCore: native.blasCore(),
    cudaDevices: native.cudaDeviceCount(),
    ompWaitPolicy: process.env.OMP_WAIT_POLICY,
    openblasThreadTimeout: process.env.OPENBLAS_THREAD_TIMEOUT,
    mallocTuning: native.mallocTuning(),
    onednnGemm: native.onednnGemm().float32,
    float32Matmul: native.onednnMatmul('float32'),
    bf16: bf16Support(),
    attentionBf16: native.attentionBf16Dot() ? 'avx512_bf16' : 'float32',
  };
}

/** Live native tensors and the bytes reported to V8 for them (for leak checks). */
export const memoryStats = (): { count: number; bytes: number } => native.liveTensors();

/**
 * The copies of weights the engine keeps next to them for matrix products, which memoryStats does not count:
 * `bf16`, the bf16 copies of weights that train under autocast; `packed`, the copies packed for oneDNN's matmul
 * kernels (bf16 forward-only calls, and float32 weights marked by packForInference). Each is kept per parameter
 * version and freed with its weight.
 */
export const weightCopies = (): Record<'bf16' | 'packed', { count: number; bytes: number }> => native.weightCopies();

// dnnl_cpu_isa_t bit masks (oneDNN 2.x): every ISA includes the bits of those it extends.
const ISA_AVX512_CORE_BF16 = 0xe7;
const ISA_AVX512_CORE_AMX = 0x3e7;

export interface Bf16Support {
  /** oneDNN's gemm_bf16bf16f32 was found in this libtorch. */
  gemm: boolean;
  /** oneDNN's name of the instruction set its kernels use (null without oneDNN). */
  isa: string | null;
  /**
   * oneDNN's implementation of the matmul primitives that forward-only bf16 calls (noGrad, inference) run on, over
   * weights packed once per version (e.g. 'brg:avx512_core_bf16', 'brg:avx512_core_amx'); null when every bf16
   * layer runs on gemm_bf16bf16f32 (a build without oneDNN's headers, or another oneDNN version than the build's).
   */
  matmul: string | null;
  native: 'amx' | 'avx512_bf16' | null;
}

/**
 * Whether bfloat16 matrix products run natively on this CPU, as oneDNN's kernels see it (its effective ISA, which
 * also honours ONEDNN_MAX_CPU_ISA): AMX tiles, AVX512-BF16's dot-product instructions, or neither (bf16 is then
 * emulated and slower than float32).
 */
export function bf16Support(): Bf16Support {
  const o = native.onednnGemm();
  const has = (mask: number): boolean => o.isa >= 0 && (o.isa & mask) === mask;
  return {
    gemm: o.bfloat16,
    isa: o.isaName,
    matmul: native.onednnMatmul('bfloat16'),
    native: !o.bfloat16 ? null : has(ISA_AVX512_CORE_AMX) ? 'amx' : has(ISA_AVX512_CORE_BF16) ? 'avx512_bf16' : null,
  };
}
