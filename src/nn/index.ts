export { Module, StateDictError, type StateDict } from './module.ts';
export * from './layers.ts';
export { ModuleList, Sequential } from './containers.ts';
export * as init from './init.ts';
export { TransformerBlock } from './transformer-block.ts';
