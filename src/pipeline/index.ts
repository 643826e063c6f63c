// Using trained models: the RepTok pipeline object and token interpolation.
export {
  RepTok,
  type RepTokSources,
  type PipelineOptions,
  type PipelineModels,
  type Loaded,
  type ProgressFn,
  type DecodeOptions,
  type InterpolateOptions,
  type GenerationOptions,
  type SampleOptions,
  type GenerateOptions,
  type Generated,
} from './reptok.ts';
export { interpolateTokens, framePositions, type InterpolationMethod } from './interpolate.ts';
export type { SamplerName } from '../flow/ode.ts'; // the options' `sampler`
export {
  SHIPPED_WEIGHTS,
  SHIPPED_FAMILIES,
  shippedDir,
  shippedFile,
  shippedSources,
  type ShippedFamily,
  type ShippedKind,
} from './shipped.ts';
