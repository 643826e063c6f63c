// Token files (`reptok encode` writes them, `reptok decode` reads them): one safetensors file with the tokens
// (N, D) as float32 under `tokens`, the images they came from and the tokenizer that made them in the metadata.
import type { Tensor } from '../engine/index.ts';
import { loadSafetensors, saveSafetensors, type SafetensorsSource } from '../io/safetensors.ts';
import { sourceName } from '../models/model-file.ts';
import { REPTOK_VERSION } from '../version.ts';

export const TOKENS_FORMAT = 'reptok-tokens';

export interface TokensFile {
  tokens: Tensor; // (N, D)
  /** Where each token came from (image paths), when known. */
  sources: string[];
  /** The tokenizer that made them. */
  tokenizer: string;
}

export function saveTokens(path: string, f: TokensFile): void {
  saveSafetensors(
    path,
    { tokens: f.tokens.to({ dtype: 'float32', device: 'cpu' }).contiguous() },
    { format: TOKENS_FORMAT, sources: JSON.stringify(f.sources), tokenizer: f.tokenizer, reptok: REPTOK_VERSION },
  );
}

export function loadTokens(source: SafetensorsSource): TokensFile {
  const { tensors, metadata } = loadSafetensors(source);
  const tokens = tensors.get('tokens');
  for (const [k, t] of tensors) if (k !== 'tokens') t.dispose();
  if (metadata.format !== TOKENS_FORMAT || !tokens || tokens.ndim !== 2) {
    tokens?.dispose();
    throw new Error(
      `${sourceName(source)}: not a reptok tokens file (expected a (N, D) 'tokens' tensor and format ` +
        `'${TOKENS_FORMAT}'; make one with \`reptok encode\`)`,
    );
  }
  return { tokens, sources: JSON.parse(metadata.sources ?? '[]'), tokenizer: metadata.tokenizer ?? '' };
}
