#!/usr/bin/env node
// The `reptok` executable: TypeScript sources run through tsx.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
