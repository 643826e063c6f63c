// Flow matching: paths in both time conventions, ODE samplers, guidance, token-flow losses and generation.
export { decoderPath, generatorPath, sampleTime, perSampleMse, type TimeSampler } from './paths.ts';
export { solve, type SolveOptions, type SolveResult, type SamplerName, type VelocityFn } from './ode.ts';
export { guided, guidedVelocity, type GuidableField, type GuidanceOptions } from './guidance.ts';
export { flowLoss, validationLoss, generate } from './token-flow.ts';
