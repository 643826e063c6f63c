// The package version, recorded in every model file reptok writes and printed by `reptok info`.
import { readFileSync } from 'node:fs';

export const REPTOK_VERSION: string = JSON.parse(
  readFileSync(new URL('../package.json', import.meta.url), 'utf8'),
).version;
