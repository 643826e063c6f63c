export { Optimizer, type ParamGroup, type ParamsInput, type OptimizerState } from './optimizer.ts';
export { AdamW, type AdamWOptions } from './adamw.ts';
export { SGD, type SGDOptions } from './sgd.ts';
export { EMA } from './ema.ts';
export { LRScheduler, constant, linearWarmup, warmupCosine, type Schedule } from './schedule.ts';
export { clipGradNorm } from './clip.ts';
