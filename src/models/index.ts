// The models: DINOv2 encoders, the RepTok tokenizer and its parts, the SD-VAE, the generators and text encoders.
export {
  DinoVisionTransformer,
  DINOV2_PRESETS,
  dinov2,
  smallVit,
  type Dinov2Config,
  type Dinov2Features,
  type Dinov2Preset,
} from './dinov2.ts';
export {
  loadDinov2,
  inferDinov2Config,
  dinov2ConfigFromHub,
  detectDinov2Layout,
  hubToOfficial,
  toOfficialLayout,
  saveEncoder,
  loadEncoder,
  loadEncoderFile,
} from './dinov2-weights.ts';
export {
  reptokPreprocess,
  betterResize,
  centerCrop,
  normalizeImagenet,
  encoderInput,
  dinov2ImageTransform,
  IMAGENET_MEAN,
  IMAGENET_STD,
} from './preprocess.ts';
export {
  RepTokTokenizer,
  TOKENIZER_PRESETS,
  tokenizer,
  reptokXL,
  reptokMid,
  reptokPixel,
  saveTokenizer,
  loadTokenizer,
  loadTokenizerFile,
  type TokenizerConfig,
  type TokenizerPreset,
  type DecodeOptions,
  type DecodeResult,
  type TokenizerLoss,
} from './tokenizer.ts';
export { DecoderTransformer, type DecoderConfig } from './decoder.ts';
export { TokenEncoder, type TrainableSpec } from './token-encoder.ts';
export { AutoencoderKL, SD_VAE, vaeConfigFromDiffusers, type VaeConfig, type Posterior } from './vae.ts';
export {
  MLPMixer1D,
  GENERATOR_PRESETS,
  generatorModel,
  classField,
  saveGenerator,
  loadGenerator,
  loadGeneratorFile,
  type GeneratorConfig,
  type GeneratorPreset,
} from './generator.ts';
export {
  TextToImage,
  T2IGenerator,
  saveTextToImage,
  loadTextToImage,
  loadTextToImageFile,
  type T2IConfig,
  type TextToImageConfig,
} from './t2i.ts';
export {
  MODEL_FORMATS,
  peekModelFile,
  readModelFile,
  type DataInfo,
  type ModelDescription,
  type ModelKind,
  type ModelSource,
  type SaveOptions,
  type TrainingInfo,
} from './model-file.ts';
export {
  ClipTextModel,
  loadClipTextModel,
  clipTextConfigFromHub,
  CLIP_VIT_L14_TEXT,
  type ClipTextConfig,
} from './text/clip-text.ts';
export { ClipTokenizer } from './text/clip-tokenizer.ts';
export { SmallTextEncoder, type SmallTextConfig } from './text/small-text-encoder.ts';
export { WordTokenizer } from './text/word-tokenizer.ts';
export type { TextEncoder, TextEncoding } from './text/text-encoder.ts';
