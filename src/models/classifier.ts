// The reference classifier that evaluation measures with: a small convolutional network trained on a data set's
// real training split (`reptok train classifier`). Its logits judge whether a reconstruction keeps its source's
// class and whether a class-conditional sample shows the requested class; its penultimate features are the space
// for Fréchet distances and precision/recall on data sets that no pretrained network covers (Fashion-MNIST,
// emoji). GroupNorm rather than BatchNorm: features must not depend on the batch they are computed in.
import { Tensor, F, noGrad, tidy, type StateDict } from '../engine/index.ts';
import { Conv2d, GELU, GroupNorm, Linear, Module, Sequential } from '../nn/index.ts';
import { SafetensorsFile, loadSafetensors, saveSafetensors } from '../io/safetensors.ts';

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

/** Writes a classifier with its config and class names in the file's metadata. */
export function saveClassifier(
  path: string,
  net: Classifier,
  o: { weights?: StateDict; classes: string[]; extra?: Record<string, string> },
): void {
  if (o.classes.length !== net.config.numClasses)
    throw new Error(`saveClassifier: ${o.classes.length} class names for ${net.config.numClasses} classes`);
  saveSafetensors(path, o.weights ?? net.stateDict(), {
    format: 'reptok-classifier',
    config: JSON.stringify(net.config),
    classes: JSON.stringify(o.classes),
    ...o.extra,
  });
}

/** A classifier written by `saveClassifier` (or trained by `reptok train classifier`), in eval mode. */
export function loadClassifier(path: string): { net: Classifier; classes: string[] } {
  const file = SafetensorsFile.open(path);
  const meta = file.metadata;
  file.close();
  if (meta.format !== 'reptok-classifier' || !meta.config || !meta.classes)
    throw new Error(`${path}: not a reptok classifier (no 'reptok-classifier' config in its metadata)`);
  const net = noGrad(() => new Classifier(JSON.parse(meta.config!) as ClassifierConfig));
  net.loadStateDict(loadSafetensors(path).tensors, { context: path });
  return { net: net.eval(), classes: JSON.parse(meta.classes) as string[] };
}
