// reptok: RepTok (one-token image representations for efficient generation) in TypeScript on libtorch.
export * from './engine/index.ts';
export * as nn from './nn/index.ts';
export * as optim from './optim/index.ts';
export * as io from './io/index.ts';
export * as models from './models/index.ts';
export * as flow from './flow/index.ts';
export * from './pipeline/index.ts';
export {
  readImage,
  readImages,
  writeImage,
  writeAnimation,
  imageGrid,
  encodePng,
  type ReadImageOptions,
} from './io/image.ts';
export { REPTOK_VERSION } from './version.ts';
