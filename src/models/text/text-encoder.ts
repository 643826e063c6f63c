// The interface text-to-image generation needs from a text encoder, whichever it is (a pretrained CLIP, or the
// small encoder that trains with the generator): prompts in, per-token states with a padding mask out.
import type { Tensor } from '../../engine/index.ts';
import type { Module } from '../../nn/index.ts';

export interface TextEncoding {
  /** Per-token hidden states (B, L, D). */
  states: Tensor;
  /** true where a token is real, false for padding (B, L). */
  mask: Tensor;
  /** One vector per prompt (B, D). */
  pooled: Tensor;
}

export interface TextEncoder extends Module {
  /** Width D of the states. */
  readonly dim: number;
  /** Tokens per prompt after truncation and padding. */
  readonly maxLength: number;
  /** Whether the encoder's weights train with the generator (false for a frozen pretrained encoder). */
  readonly trainable: boolean;
  /** Tokenises and encodes prompts of any length (truncated to `maxLength`), batched. */
  encodeText(prompts: string[]): TextEncoding;
}
