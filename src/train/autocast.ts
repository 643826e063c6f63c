// The trainer's precision setting applied around a stage's forward pass.
import { autocast, type Device } from '../engine/index.ts';
import type { CommonConfig } from './config.ts';

export const withAutocast = <T>(precision: CommonConfig['precision'], fn: () => T, device: Device = 'cpu'): T =>
  precision === 'bf16' ? autocast(fn, 'bfloat16', device) : fn();
