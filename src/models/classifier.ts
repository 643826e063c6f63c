// The reference classifier that evaluation measures with: a small convolutional network trained on a data set's
// real training split (`reptok train classifier`). Its logits judge whether a reconstruction keeps its source's
// class and whether a class-conditional sample shows the requested class; its penultimate features are the space
// for Fréchet distances and precision/recall on data sets that no pretrained network covers (Fashion-MNIST,
// emoji). GroupNorm rather than BatchNorm: features must not depend on the batch they are computed in.
import { Tensor, F, tidy } from '../engine/index.ts';
import { Conv2d, GELU, GroupNorm, Linear, Module, Sequential } from '../nn/index.ts';
import {
  loadModelFile,
  writeModelFile,
  type ModelDescription,
  type ModelSource,
  type SaveOptions,
} from './model-file.ts';

export interface ClassifierConfig {
  imageChannels: number;
  /** Channels of the three stages; the feature width is the last one. */
  widths: [number, number, number];
  numClasses: number;
}

export const CLASSIFIER_PRESETS = {
  'cnn-s': { imageChannels: 1, widths: [32, 64, 128], numClasses: 10 },
} satisfies Record<string, ClassifierConfig>;

/** conv 3×3 → GroupNorm → GELU */
const convBlock = (cin: number, cout: number): Sequential =>
  new Sequential(new Conv2d(cin, cout, 3, { padding: 1, bias: false }), new GroupNorm(8, cout), new GELU());

export class Classifier extends Module {
  readonly stages: [Sequential, Sequential, Sequential];
  readonly head: Linear;

  constructor(readonly config: ClassifierConfig) {
    super();
    const [a, b, c] = config.widths;
    this.stages = [
      this.module('stage1', new Sequential(convBlock(config.imageChannels, a), convBlock(a, a))),
      this.module('stage2', new Sequential(convBlock(a, b), convBlock(b, b))),
      this.module('stage3', convBlock(b, c)),
    ];
    this.head = this.module('head', new Linear(c, config.numClasses));
  }

  get featureDim(): number {
    return this.config.widths[2];
  }

  /** Penultimate features (B, featureDim) of images (B, C, H, W) in [-1, 1]. */
  embed(images: Tensor): Tensor {
    return tidy(() => {
      const [s1, s2, s3] = this.stages;
      const h1 = F.maxPool2d(s1.forward(images), 2); // (B, a, H/2, W/2)
      const h2 = F.maxPool2d(s2.forward(h1), 2); // (B, b, H/4, W/4)
      return F.adaptiveAvgPool2d(s3.forward(h2), 1).flatten(1); // (B, c)
    });
  }

  /** Class logits (B, numClasses). */
  forward(images: Tensor): Tensor {
    return tidy(() => this.head.forward(this.embed(images)));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Model file
// ---------------------------------------------------------------------------------------------------------------

/** Writes the classifier as a self-describing model file; its class names belong in `o.data.classes`. */
export function saveClassifier(path: string, net: Classifier, o: SaveOptions = {}): void {
  const classes = o.data?.classes;
  if (!classes || classes.length !== net.config.numClasses)
    throw new Error(`saveClassifier: ${classes?.length ?? 0} class names for ${net.config.numClasses} classes`);
  writeModelFile(path, 'classifier', net.config, o.weights ?? net.stateDict(), o);
}

/** A classifier written by `saveClassifier` (or `reptok train classifier`), in eval mode, with its description. */
export function loadClassifierFile(source: ModelSource): ModelDescription<ClassifierConfig> & { model: Classifier } {
  return loadModelFile<ClassifierConfig, Classifier>(source, 'classifier', (d) => new Classifier(d.config));
}
