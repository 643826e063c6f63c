// The trainer's precision setting applied around a stage's forward pass.
import { autocast } from '../engine/index.ts';
import type { CommonConfig } from './config.ts';

export const withAutocast = <T>(precision: CommonConfig['precision'], fn: () => T): T =>
  precision === 'bf16' ? autocast(fn) : fn();
