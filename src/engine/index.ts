// The tensor engine: libtorch through reptok's native addon.
export {
  Tensor,
  aten,
  atenVoid,
  atenSchema,
  hasOp,
  type TensorLike,
  type Shape,
  type StateDict,
  type GeneratorLike,
  type BatchShard,
} from './tensor.ts';
export * from './creation.ts';
export * from './ops.ts';
export * as F from './functional.ts';
export { setFusedKernels, setAttentionBf16Dot, packForInference, dropWeightCopies } from './fused.ts';
export { noGrad, enableGrad, isGradEnabled, grad, backward, autocast } from './autograd.ts';
export { tidy, keep } from './scope.ts';
export { Generator, manualSeed } from './random.ts';
export { setNumThreads, getNumThreads, runtimeInfo, memoryStats, weightCopies, bf16Support } from './runtime.ts';
export { cuda, deviceProblem, type Device } from './device.ts';
export { ProcessGroup, type ProcessGroupOptions, type ReduceOp } from './distributed.ts';
export { profile, formatProfile, type OpProfile } from './profile.ts';
export { DTYPES, isFloating, itemSize, type DType } from './dtype.ts';
