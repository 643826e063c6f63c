export { Module, StateDictError, moduleDevice } from './module.ts';
export * from './layers.ts';
export { ModuleList, Sequential } from './containers.ts';
export * as init from './init.ts';
export { TransformerBlock } from './transformer-block.ts';
export { RMSNorm, AdaRMSNorm } from './rms-norm.ts';
export { LinearSwiGLU } from './swiglu.ts';
export { AxialRoPE2D, axialPositions, axialRope, type Rope } from './axial-rope.ts';
export { FourierFeatures, TimestepEmbedder, timestepEmbedding } from './time-embedding.ts';
