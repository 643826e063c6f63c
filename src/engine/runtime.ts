// Process-wide runtime settings of the engine.
import { native } from './native.ts';

/** Threads libtorch uses for intra-op parallelism (default: the available cores, or OMP_NUM_THREADS). */
export const setNumThreads = (n: number): void => native.setNumThreads(n);
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
    onednnGemm: native.onednnGemm(),
  };
}

/** Live native tensors and the bytes reported to V8 for them (for leak checks). */
export const memoryStats = (): { count: number; bytes: number } => native.liveTensors();
