// The models that ship with reptok: weights/<family>/ holds one model set per data set, trained by
// scripts/train-weights.mjs with reptok's own CLI, each file with its model card (<kind>.md) beside it. When no model
// is named, RepTok.load() and every command use them: Fashion-MNIST for everything class-conditional, emoji for
// text-to-image.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { RepTokSources } from './reptok.ts';

/** The package's weights/ folder, wherever the package is installed (not relative to the working directory). */
export const SHIPPED_WEIGHTS = fileURLToPath(new URL('../../weights', import.meta.url));

export const SHIPPED_FAMILIES = ['fashion-mnist', 'emoji'] as const;
export type ShippedFamily = (typeof SHIPPED_FAMILIES)[number];

/** What a family may ship: the SSL encoder, the reference classifier, the tokenizer and its generators. */
export type ShippedKind = 'encoder' | 'classifier' | 'tokenizer' | 'generator' | 't2i';

/** The folder of a family's shipped models. */
export function shippedDir(family: ShippedFamily): string {
  if (!SHIPPED_FAMILIES.includes(family))
    throw new Error(`no shipped models named '${family}': choose ${SHIPPED_FAMILIES.join(' or ')}`);
  return join(SHIPPED_WEIGHTS, family);
}

const shippedPath = (family: ShippedFamily, kind: ShippedKind): string =>
  join(shippedDir(family), `${kind}.safetensors`);

/** Whether a family ships a model of `kind`. */
export const ships = (family: ShippedFamily, kind: ShippedKind): boolean => existsSync(shippedPath(family, kind));

/** The shipped model file of `kind` in `family`, or an error that says what to do without it. */
export function shippedFile(family: ShippedFamily, kind: ShippedKind): string {
  const path = shippedPath(family, kind);
  if (!ships(family, kind))
    throw new Error(
      `no shipped ${family} ${kind}: ${path} is missing. Pass a model file, or train the shipped models with ` +
        `\`node scripts/train-weights.mjs ${family}\` (docs/training.md)`,
    );
  return path;
}

/** The pipeline sources of a family's shipped models: its tokenizer and whichever generators it has. */
export function shippedSources(family: ShippedFamily): RepTokSources {
  const sources: RepTokSources = { tokenizer: shippedFile(family, 'tokenizer') };
  for (const kind of ['generator', 't2i'] as const) if (ships(family, kind)) sources[kind] = shippedFile(family, kind);
  return sources;
}
